"""Dispatch figures for /metrics: per service, how far its consumer group is behind on the event stream.

Read from Redis at scrape time (only with LLM_PROXY_EVENT_BUS=redis-streams), with short timeouts:
a Redis that is down makes the figures unavailable, never the endpoint. The figures (lag, pending,
dead_letter) are computed by `instrumentation.bus.groups.read_figures`, as for `manage.py dispatch_status`,
which may wait seconds for Redis; a scrape may not, and counts at most MAX_SCAN entries.

The figures are kept for CACHE_SECONDS: scrapes from several Prometheus servers, dashboards and people
cost Redis one read per few seconds, and a Redis that hangs costs one TIMEOUT per few seconds, not
one per scrape. Reading them logs a (throttled) warning for each group whose lag passes
LAG_WARNING_SHARE of REDIS_STREAM_MAX_LEN: the stream is trimmed to that length whatever the groups
have read, so beyond it undelivered events are lost.
"""

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings

from instrumentation.bus import groups
from instrumentation.bus.queued import Throttled
from llmproxy import redis as redis_clients

logger = logging.getLogger(__name__)

TIMEOUT = 0.5  # seconds; a scrape must answer even when Redis hangs
MAX_SCAN = 10_000  # entries counted per scrape at most
CACHE_SECONDS = 3.0
LAG_WARNING_SHARE = 0.8
FIGURES = ("lag", "pending", "dead_letter")

Figures = dict[str, Any]  # {"status": ..., "services": {service: {lag, pending, dead_letter}}}


class DispatchFigures:
    """The process's last figures, kept for CACHE_SECONDS; one scrape reads Redis, those arriving meanwhile
    take its answer."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, Figures]] = {}
        self._lock = threading.Lock()

    def read(self) -> Figures:
        """{"status": "ok" | "redis_unavailable" | "not_applicable", "services": {service: figures}}"""
        if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
            return {"status": "not_applicable", "services": {}}
        key = (settings.REDIS_URL, settings.REDIS_STREAM_KEY, tuple(settings.DISPATCH_SERVICES))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            figures = _read_figures()
            self._cache.clear()  # only the current settings' figures are worth keeping
            self._cache[key] = (time.monotonic(), figures)
        if figures["status"] == "ok":
            warn_about_lag(figures["services"], settings.REDIS_STREAM_MAX_LEN)
        return figures


_figures = DispatchFigures()


def dispatch_figures() -> Figures:
    """The figures /metrics shows (see `DispatchFigures.read`)."""
    return _figures.read()


def warn_about_lag(services: dict[str, dict[str, Any]], max_len: int) -> None:
    """A warning for each group whose lag passes LAG_WARNING_SHARE of the stream's MAXLEN (0: never trimmed)."""
    if max_len <= 0:
        return
    for service, figures in services.items():
        if figures["lag"] > LAG_WARNING_SHARE * max_len:
            _lag_warning.warning(
                f"event stream: the {service} dispatchers are %d entries behind, over %d%% of "
                "REDIS_STREAM_MAX_LEN=%d; entries trimmed before they read them are lost (add dispatchers, "
                "or raise REDIS_STREAM_MAX_LEN)",
                figures["lag"],
                int(LAG_WARNING_SHARE * 100),
                max_len,
            )


def _read_figures() -> Figures:
    try:
        client = redis_clients.client(settings.REDIS_URL, timeout=TIMEOUT)
        services = groups.read_figures(client, settings.REDIS_STREAM_KEY, settings.DISPATCH_SERVICES, max_scan=MAX_SCAN)
    except (redis.RedisError, OSError):
        logger.info("metrics: Redis did not answer; dispatch figures are unavailable")
        return {"status": "redis_unavailable", "services": {}}
    return {
        "status": "ok",
        "services": {service: {name: row[name] for name in FIGURES} for service, row in services.items()},
    }


_lag_warning = Throttled(logger, interval=60.0)


def families(figures: dict[str, Any]) -> list[Any]:
    """The figures as Prometheus gauges labelled by service, plus whether Redis answered."""
    from prometheus_client.core import GaugeMetricFamily

    helps = {
        "lag": "Events on the stream the service's dispatchers have not read yet",
        "pending": "Events read by the service's dispatchers but not yet acknowledged",
        "dead_letter": "Events of the service moved to the dead-letter stream after failing delivery",
    }
    result = []
    for key, help_text in helps.items():
        family = GaugeMetricFamily(f"llm_proxy_dispatch_{key}", help_text, labels=["service"])
        for service, values in sorted(figures["services"].items()):
            family.add_metric([service], values[key])
        result.append(family)
    up = GaugeMetricFamily("llm_proxy_dispatch_stats_up", "1 when the dispatch figures could be read from Redis")
    up.add_metric([], 0 if figures["status"] == "redis_unavailable" else 1)
    return [*result, up]
