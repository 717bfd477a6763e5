"""The event bus's publish buffer for /metrics: events and bytes waiting, and whether the bus takes them.

Sampled like the runtime figures (at every scrape and, with several processes, by each process's
heartbeat), never on the request path. With PROMETHEUS_MULTIPROC_DIR the waiting events and bytes are
summed over the live processes, and `connected` is their minimum: 0 as soon as one web process's
publisher is in its retry loop.
"""

from typing import Any

from prometheus_client import Gauge

WAITING_EVENTS = Gauge(
    "llm_proxy_event_buffer_events",
    "Instrumentation events waiting to be written to the event bus (buffered, or in the batch being written)",
    multiprocess_mode="livesum",
)
WAITING_BYTES = Gauge(
    "llm_proxy_event_buffer_bytes",
    "Bytes of those events (captured bodies plus a fixed overhead each), bounded by OBSERVABILITY_BUFFER_BYTES",
    multiprocess_mode="livesum",
)
CONNECTED = Gauge(
    "llm_proxy_event_bus_connected",
    "1 when the event bus takes events (redis-streams: the last write succeeded); 0 while its publisher retries",
    multiprocess_mode="livemin",
)


def refresh() -> None:
    """Copy this process's bus figures into the gauges (nothing waits and all is well before a bus exists)."""
    from instrumentation.bus import current_bus  # the bus imports the metrics module: import at call time

    bus = current_bus()
    stats = bus.stats() if bus is not None else {}
    WAITING_EVENTS.set(stats.get("events_queued", 0))
    WAITING_BYTES.set(stats.get("bytes_queued", 0))
    CONNECTED.set(1 if stats.get("connected", True) else 0)


def figures(sums: dict[str, float]) -> dict[str, Any]:
    """The JSON /metrics `event_bus` object from the summed families."""
    return {
        "connected": sums.get(CONNECTED._name, 1) >= 1,
        "waiting_events": int(sums.get(WAITING_EVENTS._name, 0)),
        "waiting_bytes": int(sums.get(WAITING_BYTES._name, 0)),
    }
