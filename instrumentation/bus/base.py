"""The event bus: the proxy publishes instrumentation events, dispatchers consume them.

One small base, one module per backend (memory.py, redis_streams.py), selected by LLM_PROXY_EVENT_BUS.
"""

from collections.abc import Callable
from typing import Any

from instrumentation.events import Event

# A delivered message: (message id, the event's JSON text exactly as published).
Message = tuple[str, str]


class EventBus:
    """Carries events from the proxy to consumers. `publish` never blocks and never raises."""

    name = "base"

    def publish(self, event: Event) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Start background work (the publisher task). Called once per process from the running event loop."""

    async def stop(self, grace: float = 5.0) -> None:
        """Flush what is queued (for at most `grace` seconds), then stop. Called on shutdown."""

    async def flush(self, within: float = 5.0) -> bool:
        """Wait until every event published so far has been handed on; False when `within` seconds passed first."""
        return True

    def close(self) -> None:
        """Synchronous teardown without flushing (tests, reset_for_tests)."""

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics: at least `events_published` and `events_dropped`."""
        return {"events_published": 0, "events_dropped": 0}

    # In-process subscribers (in-memory fan-out, FILE_EVENT_LOG).
    def subscribe(self, callback: Callable[[Event], None]) -> None:
        raise NotImplementedError


class StreamConsumer:
    """Consumer-group access to a durable stream, used by dispatchers (synchronous: Celery tasks, the CLI)."""

    def ensure_group(self, group: str) -> None:
        raise NotImplementedError

    def read(self, group: str, consumer: str, count: int, block_ms: int | None, pending: bool = False) -> list[Message]:
        """New messages for this consumer (`pending=True`: its own unacknowledged ones, for recovery)."""
        raise NotImplementedError

    def ack(self, group: str, ids: list[str]) -> None:
        raise NotImplementedError

    def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        """Take over messages idle longer than `min_idle_ms` from crashed consumers (XAUTOCLAIM)."""
        raise NotImplementedError
