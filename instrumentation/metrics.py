"""Process counters and histograms for /metrics and /metrics/prometheus.

The proxy calls `count` and `observe`; both are cheap, never block and never raise.
Names used by the proxy: requests, errors, cache_hits, cache_misses, cache_bypass, cache_stores,
events_published, events_dropped; histograms: proxy_overhead_seconds, upstream_ttfb_seconds.
"""

import threading
from collections import defaultdict

_lock = threading.Lock()
_counters: dict[str, float] = defaultdict(float)
_observations: dict[str, list[float]] = defaultdict(list)


def count(name: str, amount: float = 1, **labels: str) -> None:
    key = name if not labels else name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
    with _lock:
        _counters[key] += amount


def observe(name: str, seconds: float) -> None:
    with _lock:
        values = _observations[name]
        if len(values) < 10000:
            values.append(seconds)


def snapshot() -> dict[str, float]:
    with _lock:
        return dict(_counters)
