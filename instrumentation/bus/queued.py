"""What both buses share: `publish` appends to a bounded buffer; one task on the running loop drains it.

The request path only does a length check, a size sum, a deque append and an Event.set(), so it never
waits on subscribers or on Redis. The buffer is bounded twice: in events (`capacity`) and in bytes
(`max_bytes`, OBSERVABILITY_BUFFER_BYTES), counting the batch the drain task holds as well, so that a
Redis outage under large captured bodies costs at most `max_bytes` of memory, not capacity x 320 KiB.

The buffer is a deque rather than an asyncio.Queue because it must survive a
change of event loop (tests run one loop per test, a live server runs its own) and accept events from
threads without a loop; the drain task is (re)started lazily on whichever loop publishes.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from instrumentation import metrics
from instrumentation.bus.base import EventBus
from instrumentation.events import Event

logger = logging.getLogger("instrumentation.bus")

# What an event costs beyond its bodies: the object, its strings and its header map. Taken as a constant so
# that sizing an event on the request path is two len() calls, not an encoding.
EVENT_OVERHEAD_BYTES = 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def event_size(event: Event) -> int:
    """Bytes an event holds in the buffer: its captured bodies plus a fixed overhead."""
    request, response = event.request_body, event.response_body
    return EVENT_OVERHEAD_BYTES + (len(request) if request else 0) + (len(response) if response else 0)


class Throttled:
    """Warnings logged at most once per `interval` seconds per message, with how many were suppressed."""

    def __init__(self, log: logging.Logger, interval: float = 10.0) -> None:
        self.log = log
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, message: str, *args: object, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(message, -self.interval) < self.interval:
            self._suppressed[message] = self._suppressed.get(message, 0) + 1
            return
        suppressed = self._suppressed.pop(message, 0)
        self._last[message] = now
        suffix = f" ({suppressed} similar warnings suppressed)" if suppressed else ""
        self.log.warning(message + suffix, *args, **kwargs)


class QueuedBus(EventBus):
    """An EventBus whose `publish` only buffers; `awrite` (per backend) runs in the drain task."""

    batch_max = 256  # events handed to awrite at once
    batch_max_bytes = 4 * 1024 * 1024  # and at most this many event bytes (one event more when it alone is larger)
    linger = 0.0  # seconds the drain task waits after waking so that batches fill under load

    def __init__(self, *, capacity: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._buffer: deque[Event] = deque()
        self._buffered_bytes = 0
        self._subscribers: list[Callable[[Event], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._generation = 0
        self._closing = False
        self._in_flight = 0
        self._in_flight_bytes = 0
        self.published = 0
        self.dropped = 0
        self._warn = Throttled(logger)

    # --- request side: cheap, never raises, never waits -------------------------
    def publish(self, event: Event) -> None:
        try:
            if len(self._buffer) >= self.capacity:
                self.count_dropped(1, "the publish buffer is full (%d events)", self.capacity)
                return
            size = event_size(event)
            if size > self.max_bytes:
                self.count_dropped(1, "an event of %d bytes is larger than the byte bound (%d)", size, self.max_bytes)
                return
            if self._buffered_bytes + self._in_flight_bytes + size > self.max_bytes:
                self.count_dropped(1, "the publish buffer is full (%d bytes)", self.max_bytes)
                return
            self._buffered_bytes += size
            self._buffer.append(event)
            self._kick()
        except Exception:  # publishing must never fail a request
            logger.exception("event bus: publish failed")

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "events_published": self.published,
            "events_dropped": self.dropped,
            "events_queued": len(self._buffer) + self._in_flight,
            "bytes_queued": self._buffered_bytes + self._in_flight_bytes,
            "connected": self.connected,
        }

    @property
    def connected(self) -> bool:
        """Whether the backend takes events now (the Redis bus: False while its publisher retries)."""
        return True

    def count_dropped(self, amount: int, reason: str, *args: object) -> None:
        self.dropped += amount
        metrics.count("events_dropped", amount)
        self._warn.warning(f"event bus ({self.name}): dropped %d event(s): {reason}", amount, *args)

    def count_published(self, amount: int) -> None:
        self.published += amount
        metrics.count("events_published", amount)

    def _kick(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread without a loop: wake the drain task where it runs, if anywhere
            owner = self._loop
            if owner is not None and self._wakeup is not None and owner.is_running():
                owner.call_soon_threadsafe(self._wakeup.set)
            return
        wakeup = self._wakeup
        if loop is not self._loop or self._task is None or self._task.done() or wakeup is None:
            self._start_on(loop)
        else:
            wakeup.set()

    def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        # A task left on another loop sees the new generation and ends after its current batch.
        old_loop, old_wakeup = self._loop, self._wakeup
        if old_loop is not None and old_wakeup is not None and old_loop is not loop and old_loop.is_running():
            old_loop.call_soon_threadsafe(old_wakeup.set)
        self._generation += 1
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._drain(self._generation, self._wakeup), name=f"event-bus-{self.name}")

    # --- the drain task -----------------------------------------------------------
    async def _drain(self, generation: int, wakeup: asyncio.Event) -> None:
        try:
            while generation == self._generation:
                if not self._buffer:
                    if self._closing:
                        return
                    wakeup.clear()
                    await wakeup.wait()
                    if self.linger and not self._closing:
                        await asyncio.sleep(self.linger)
                    continue
                batch = self._take_batch()
                try:
                    self._deliver_local(batch)
                    await self.awrite(batch)
                except Exception:  # a bug, not an outage (backends retry those): lose this batch, not the task
                    logger.exception("event bus (%s): writing a batch failed", self.name)
                    self.count_dropped(len(batch), "the publisher failed (see the error above)")
                finally:
                    self._in_flight = self._in_flight_bytes = 0
        finally:
            await self.arelease(generation)

    def _take_batch(self) -> list[Event]:
        """Up to batch_max events and batch_max_bytes from the buffer, which become the batch in hand."""
        buffer, total = self._buffer, 0
        batch: list[Event] = []
        while buffer and len(batch) < self.batch_max:
            size = event_size(buffer[0])
            if batch and total + size > self.batch_max_bytes:
                break
            batch.append(buffer.popleft())
            total += size
        # Counted in the batch in hand before they leave the buffer's count: publish (maybe on another thread)
        # may see them twice for an instant, never not at all.
        self._in_flight, self._in_flight_bytes = len(batch), total
        self._buffered_bytes -= total
        return batch

    def _deliver_local(self, batch: list[Event]) -> None:
        for callback in self._subscribers:
            for event in batch:
                try:
                    callback(event)
                except Exception:
                    self._warn.warning("event bus (%s): subscriber %r failed", self.name, callback)

    # --- per backend ----------------------------------------------------------------
    async def awrite(self, batch: list[Event]) -> None:
        """Hand a batch to the backend and count it as published or dropped."""
        raise NotImplementedError

    async def arelease(self, generation: int) -> None:
        """Release per-loop resources of a drain task that ends (e.g. a Redis connection pool)."""

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._closing = False
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._task is None or self._task.done():
            self._start_on(loop)

    async def flush(self, within: float = 5.0) -> bool:
        """Wait until everything published so far has been handed to the backend (True) or `within` passed."""
        deadline = time.monotonic() + within
        while self._buffer or self._in_flight:
            if time.monotonic() >= deadline:
                return False
            here = asyncio.get_running_loop()
            # A drain task running on another thread's loop is left alone to do the work.
            if self._buffer and (
                self._task is None or self._task.done() or self._loop is None or not self._loop.is_running()
            ):
                await self.start()
            elif self._wakeup is not None and self._loop is here:
                self._wakeup.set()
            await asyncio.sleep(0.005)
        return True

    async def stop(self, grace: float = 5.0) -> None:
        """Flush the buffer (for at most `grace` seconds), then end the drain task; what is left counts as dropped."""
        self._closing = True
        flushed = await self.flush(grace)
        if self._wakeup is not None and self._loop is asyncio.get_running_loop():
            self._wakeup.set()
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            if not flushed:
                task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if self._buffer:
            left = len(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
            self.count_dropped(left, "still queued at shutdown")
        await asyncio.to_thread(self.close_subscribers)
        self._closing = False  # a later publish (a new server in the same process, tests) starts afresh

    def close_subscribers(self) -> None:
        for callback in self._subscribers:
            close = getattr(callback, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        """Synchronous teardown (tests): stop accepting work and let the drain task end."""
        self._closing = True
        self._generation += 1
        if self._loop is not None and self._wakeup is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._wakeup.set)
            except RuntimeError:
                pass
        self.close_subscribers()
