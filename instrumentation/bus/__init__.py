"""The event bus: the proxy publishes instrumentation events, dispatchers consume them.

One small base, one module per backend (memory.py, redis_streams.py), selected by LLM_PROXY_EVENT_BUS.
`get_bus()` is the process's publisher; `get_consumer()` gives dispatchers consumer-group access to the
Redis stream. The publisher's task starts with the web process (lifecycle hooks) or lazily on the
first publish, and the shutdown hook flushes what is queued.
"""

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from instrumentation.bus.base import EventBus, Message, StreamConsumer
from llmproxy import lifecycle

__all__ = ["EventBus", "Message", "StreamConsumer", "current_bus", "get_bus", "get_consumer", "reset_for_tests"]

BACKENDS = {
    "in-memory": "instrumentation.bus.memory.InMemoryBus",
    "redis-streams": "instrumentation.bus.redis_streams.RedisStreamsBus",
}

_bus: EventBus | None = None
_lock = threading.Lock()


def get_bus() -> EventBus:
    """The process's publisher, created on first use from the current settings."""
    bus = _bus
    return bus if bus is not None else _create_bus()


def current_bus() -> EventBus | None:
    """The process's publisher if one was created, without creating it (metrics read it)."""
    return _bus


def _create_bus() -> EventBus:
    global _bus
    with _lock:
        if _bus is None:
            bus = import_string(BACKENDS[settings.LLM_PROXY_EVENT_BUS]).from_settings()
            if settings.FILE_EVENT_LOG:
                from instrumentation.file_log import FileEventLog

                bus.subscribe(FileEventLog(settings.FILE_EVENT_LOG))
            _bus = bus
        return _bus


def get_consumer(*, stream_key: str | None = None, url: str | None = None) -> StreamConsumer:
    """Consumer-group access to the Redis event stream (REDIS_URL, REDIS_STREAM_KEY unless given)."""
    if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
        raise ImproperlyConfigured(
            f"LLM_PROXY_EVENT_BUS={settings.LLM_PROXY_EVENT_BUS!r} has no durable stream to consume: a dispatcher "
            "in its own process needs LLM_PROXY_EVENT_BUS=redis-streams (with Redis) in the web process and here. "
            "With the in-memory bus, use FILE_EVENT_LOG in the web process instead."
        )
    from instrumentation.bus.redis_streams import RedisStreamConsumer

    return RedisStreamConsumer.from_settings(stream_key=stream_key, url=url)


def reset_for_tests() -> None:
    """Forget the process's bus so the next get_bus() follows the current settings."""
    global _bus
    with _lock:
        bus, _bus = _bus, None
    if bus is not None:
        bus.close()


async def _astart_bus() -> None:
    await get_bus().start()


async def _astop_bus() -> None:
    if _bus is not None:
        await _bus.stop(grace=min(settings.SHUTDOWN_TIMEOUT, 10.0))


lifecycle.on_startup(_astart_bus)
lifecycle.on_shutdown(_astop_bus)
