"""Builds drainers from settings: bounded Celery cycles, or the CLI's long-running loop."""

import threading

from django.conf import settings

from dispatch.backends import create_backend
from dispatch.drain import Drainer, DrainOptions
from dispatch.streams import DeadLetters, consumer_name_for
from instrumentation.bus import StreamConsumer, get_consumer
from instrumentation.bus.groups import group_for

CYCLE_SECONDS = 10.0  # one Celery task drains at most this long, then frees its worker slot
# A cycle ends as soon as nothing new arrives within this wait: idle services hold no worker slot,
# and beat starts the next cycle within DISPATCH_INTERVAL.
CYCLE_IDLE_WAIT = 0.2


class DrainState:
    """What a dispatching process keeps between drain cycles: its stream consumers (one connection pool per
    stream, reused by every cycle) and one lock per service.

    No lock across workers: the consumer group already gives each entry to one consumer, and a lock kept
    in Redis outlives a killed worker (it held a service for a minute). Within one process, cycles share
    a consumer name, and a second reader under that name would take the first one's pending entries for
    its own (a thread pool could run both), so a process runs one cycle per service at a time.
    """

    def __init__(self) -> None:
        self._consumers: dict[tuple[str, str], StreamConsumer] = {}
        self._cycle_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def consumer(self) -> StreamConsumer:
        key = (settings.REDIS_URL, settings.REDIS_STREAM_KEY)
        with self._lock:
            if key not in self._consumers:
                self._consumers[key] = get_consumer()
            return self._consumers[key]

    def cycle_lock(self, service: str) -> threading.Lock:
        with self._lock:
            return self._cycle_locks.setdefault(service, threading.Lock())


_state = DrainState()


def stream_consumer() -> StreamConsumer:
    """The process's consumer for the configured stream (one connection pool, reused by every cycle)."""
    return _state.consumer()


def build_drainer(
    service: str,
    *,
    cli: bool = False,
    endpoint: str | None = None,
    api_key: str | None = None,
    batch_size: int | None = None,
    stop: threading.Event | None = None,
    block_seconds: float = 1.0,
) -> Drainer:
    """A started drainer for `service`. Raises BackendConfigError for a missing key or path."""
    backend = create_backend(service, endpoint=endpoint, api_key=api_key, cli=cli)
    options = DrainOptions(
        service=service,
        group=group_for(service, cli=cli),
        consumer=consumer_name_for(service, cli=cli),
        batch_size=batch_size or settings.DISPATCHER_BATCH_SIZE,
        read_count=settings.REDIS_STREAM_BATCH_SIZE,
        # Short blocking reads so a stop request or the end of a cycle is noticed within a second.
        block_seconds=min(settings.REDIS_STREAM_BLOCK_TIME, block_seconds),
        claim_seconds=settings.REDIS_STREAM_CLAIM_TIME,
        retry_base=settings.DISPATCHER_RETRY_BASE,
        max_deliveries=settings.DISPATCH_MAX_DELIVERIES,
        batch_wait=settings.DISPATCHER_FLUSH_INTERVAL if backend.batch_wait is None else backend.batch_wait,
    )
    try:
        return Drainer(backend, stream_consumer(), DeadLetters(), options, stop=stop).start()
    except Exception:
        backend.close()
        raise


def cycle_lock(service: str) -> threading.Lock:
    return _state.cycle_lock(service)


def run_cycle(service: str, *, seconds: float = CYCLE_SECONDS) -> int:
    """One bounded drain of `service`, unless this process is draining it already; returns entries handled."""
    lock = cycle_lock(service)
    if not lock.acquire(blocking=False):
        return 0
    drainer = None
    try:
        drainer = build_drainer(service, block_seconds=CYCLE_IDLE_WAIT)
        return drainer.run(seconds=seconds, until_idle=True)
    finally:
        if drainer is not None:
            drainer.backend.close()
        lock.release()
