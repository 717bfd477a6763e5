"""Process counters and histograms for /metrics and /metrics/prometheus.

The proxy calls `count` and `observe` on the hot path: both are a dictionary lookup and one
prometheus_client increment (1-3 µs, docs/performance.md), never block and never raise.
Names used by the proxy: requests (label status_class), errors, requests_refused (label reason),
cache_hits, cache_misses, cache_bypass, cache_stores, events_published, events_dropped; histograms:
proxy_overhead_seconds, upstream_ttfb_seconds. Any other name becomes `llm_proxy_<name>_total` on first use.

With several processes (web workers, Celery workers) set PROMETHEUS_MULTIPROC_DIR to one shared,
empty folder (instrumentation/multiprocess.py): prometheus_client then keeps each process's values
in a memory-mapped file there and a scrape of any process adds them all up (`collect`).
"""

import atexit
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any, cast

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from instrumentation import metrics_bus
from instrumentation import metrics_runtime as runtime
from instrumentation import multiprocess as process_files

logger = logging.getLogger(__name__)

# prometheus_client picks its storage from this variable when it is first imported.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client

# The overhead is sub-millisecond when healthy; upstream first bytes take tens of ms to seconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
TTFB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The guide's counters, plus what this implementation adds. (metric name, help, label names)
_COUNTER_SPECS = {
    "requests": (
        "llm_proxy_requests_by_status_class",
        "Proxy requests by response status class (2xx..5xx); llm_proxy_requests_total is their sum",
        ("status_class",),
    ),
    "errors": ("llm_proxy_errors", "Total number of proxy errors", ()),
    "requests_refused": (
        "llm_proxy_requests_refused",
        "Requests refused before any token was accepted (400/401/403/404/405/413), by reason (the error code)",
        ("reason",),
    ),
    "cache_hits": ("llm_proxy_cache_hits", "Total number of cache hits", ()),
    "cache_misses": ("llm_proxy_cache_misses", "Total number of cache misses", ()),
    "cache_bypass": ("llm_proxy_cache_bypass", "Total number of cache bypasses", ()),
    "cache_stores": ("llm_proxy_cache_stores", "Total number of cache stores", ()),
    "events_published": ("llm_proxy_events_published", "Instrumentation events written to the event bus", ()),
    "events_dropped": (
        "llm_proxy_events_dropped",
        "Instrumentation events lost (buffer full or bus unavailable)",
        (),
    ),
}
_HISTOGRAM_SPECS = {
    "proxy_overhead_seconds": (
        "llm_proxy_overhead_seconds",
        "Time the proxy itself adds to a request (total time minus time waiting for the upstream)",
        OVERHEAD_BUCKETS,
    ),
    "upstream_ttfb_seconds": (
        "llm_proxy_upstream_ttfb_seconds",
        "Time from sending a request upstream to receiving the upstream response headers",
        TTFB_BUCKETS,
    ),
}
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


class _Metric:
    """A prometheus_client metric and its label names, with its children cached by label values."""

    __slots__ = ("metric", "labelnames", "children")

    def __init__(self, metric: Any, labelnames: tuple[str, ...]) -> None:
        self.metric = metric
        self.labelnames = labelnames
        self.children: dict[Any, Any] = {}

    def child(self, labels: dict[str, str]) -> Any:
        if not self.labelnames:
            return self.metric
        # One label (status_class) is the hot case: its value alone is the cache key.
        key = (
            labels.get(self.labelnames[0], "")
            if len(self.labelnames) == 1
            else tuple(labels.get(name, "") for name in self.labelnames)
        )
        found = self.children.get(key)
        if found is None:
            values = (key,) if len(self.labelnames) == 1 else cast(tuple[str, ...], key)
            found = self.children[key] = self.metric.labels(*(str(value) for value in values))
        return found


_counters: dict[str, _Metric] = {}
_histograms: dict[str, _Metric] = {}


def count(name: str, amount: float = 1, **labels: str) -> None:
    try:
        metric = _counters.get(name) or _new_counter(name, labels)
        metric.child(labels).inc(amount)
    except Exception:  # metrics must never break a request
        logger.debug("metrics.count(%r) failed", name, exc_info=True)


def observe(name: str, seconds: float) -> None:
    try:
        metric = _histograms.get(name) or _new_histogram(name)
        metric.metric.observe(seconds)
    except Exception:
        logger.debug("metrics.observe(%r) failed", name, exc_info=True)


def _new_counter(name: str, labels: dict[str, str]) -> _Metric:
    metric_name, help_text, labelnames = _COUNTER_SPECS.get(name) or (
        "llm_proxy_" + _NOT_NAME.sub("_", name).removesuffix("_total"),
        f"Count of {name}",
        tuple(sorted(labels)),
    )
    created = _counters[name] = _Metric(Counter(metric_name, help_text, labelnames), labelnames)
    return created


def _new_histogram(name: str) -> _Metric:
    metric_name, help_text, buckets = _HISTOGRAM_SPECS.get(name) or (
        "llm_proxy_" + _NOT_NAME.sub("_", name),
        f"Distribution of {name}",
        TTFB_BUCKETS,
    )
    created = _histograms[name] = _Metric(Histogram(metric_name, help_text, buckets=buckets), ())
    return created


for _name in _COUNTER_SPECS:
    _new_counter(_name, {})
for _name in _HISTOGRAM_SPECS:
    _new_histogram(_name)
runtime.on_refresh(metrics_bus.refresh)  # the publish buffer's waiting events and bytes, sampled like the runtime


def collect(*, asyncio_tasks: int | None = None) -> list[Metric]:
    """Every metric family this process serves: totals over all processes in multiprocess mode."""
    runtime.refresh(asyncio_tasks)
    if not MULTIPROCESS:
        families = list(REGISTRY.collect())
    else:
        registry = CollectorRegistry()
        registry.register(_Merged(process_files.files_to_merge()))
        # These describe the process answering the scrape; the llm_proxy_* runtime figures are sums.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        families = list(registry.collect())
    return _with_requests_total(runtime.finish(families))


def _with_requests_total(families: list[Metric]) -> list[Metric]:
    """The guide's unlabelled llm_proxy_requests_total, so its queries (errors / requests) match series."""
    by_class = _COUNTER_SPECS["requests"][0]
    total = sum(s.value for f in families if f.name == by_class for s in f.samples if s.name.endswith("_total"))
    family = CounterMetricFamily("llm_proxy_requests", "Total number of proxy requests", value=total)
    return [families[0], family, *families[1:]]


def totals(families: list[Metric]) -> dict[str, float]:
    """Sum of each family's main samples (`_total`, gauge value), by family name."""
    sums: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name in (family.name, family.name + "_total"):
                sums[family.name] = sums.get(family.name, 0.0) + sample.value
    return sums


def snapshot() -> dict[str, float]:
    """The proxy's counters by the names `count` takes (all processes in multiprocess mode)."""
    sums = totals(collect())
    figures = {name: sums.get(spec[0], 0.0) for name, spec in _COUNTER_SPECS.items()}
    figures["uptime_seconds"] = sums.get("llm_proxy_uptime_seconds", 0.0)
    return figures


def exposition(families: list[Metric]) -> bytes:
    """Prometheus text format. The guide names two counters without `_total`; they are written as named."""
    chunks: list[bytes] = []
    for family in families:
        if family.type == "counter" and family.name in runtime.UNSUFFIXED_COUNTERS:
            value = sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
            written = floatToGoString(value)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
            chunks.append(
                f"# HELP {family.name} {family.documentation}\n# TYPE {family.name} counter\n"
                f"{family.name} {written}\n".encode()
            )
        else:
            chunks.append(generate_latest(_Families([family])))
    return b"".join(chunks)


class _Merged:
    """The multiprocess files chosen by `files_to_merge` (prometheus_client's collector would take all)."""

    def __init__(self, files: list[str]) -> None:
        self._files = files

    def collect(self) -> Iterable[Metric]:
        # MultiProcessCollector.merge is unannotated in prometheus_client.
        merged: Iterable[Metric] = multiprocess.MultiProcessCollector.merge(self._files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


class _Families:
    """Lets generate_latest format families that were already collected."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def mark_process_dead(identifier: str | None = None) -> None:
    """Drop a finished process's live gauges (servers' child-exit hooks; also run at exit)."""
    if MULTIPROCESS:
        process_files.mark_dead(identifier or process_files.process_id())


if MULTIPROCESS:
    atexit.register(mark_process_dead)  # no id bound here: a forked child must mark itself, not its parent
