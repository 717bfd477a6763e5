"""GET METRICS_PATH (JSON, the reference's fields plus events, the event bus and dispatch) and METRICS_PATH/prometheus.

Unauthenticated like the reference, so nothing secret goes in: counts, timings and service names only.
The views are async so they can count the event loop's tasks; collecting (files in multiprocess mode,
Redis for the dispatch figures) runs in a worker thread so a slow Redis never holds up the loop.
"""

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client.metrics_core import Metric

from instrumentation import metrics, metrics_bus, metrics_dispatch
from instrumentation import metrics_runtime as runtime

# The classic text format every Prometheus understands (prometheus_client's newer default says 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# JSON field -> Prometheus family it is read from.
JSON_FIELDS = {
    "uptime_seconds": "llm_proxy_uptime_seconds",
    "request_count": "llm_proxy_requests",
    "error_count": "llm_proxy_errors",
    "cache_hits": "llm_proxy_cache_hits",
    "cache_misses": "llm_proxy_cache_misses",
    "cache_bypass": "llm_proxy_cache_bypass",
    "cache_stores": "llm_proxy_cache_stores",
    "events_published": "llm_proxy_events_published",
    "events_dropped": "llm_proxy_events_dropped",
}


@require_safe
async def metrics_json(request: HttpRequest) -> JsonResponse:
    families, dispatch = await _gather()
    sums = metrics.totals(families)
    body: dict[str, Any] = {field: _number(sums.get(family, 0)) for field, family in JSON_FIELDS.items()}
    body["uptime_seconds"] = sums.get("llm_proxy_uptime_seconds", 0.0)
    body["requests_by_status_class"] = _by_label(families, "llm_proxy_requests_by_status_class", "status_class")
    body["event_bus"] = {"backend": settings.LLM_PROXY_EVENT_BUS, **metrics_bus.figures(sums)}
    body["requests_refused"] = _by_label(families, "llm_proxy_requests_refused", "reason")
    body["dispatch"] = dispatch
    return JsonResponse(body, headers={"Cache-Control": "no-store"})


@require_safe
async def metrics_prometheus(request: HttpRequest) -> HttpResponse:
    families, dispatch = await _gather()
    text = metrics.exposition([*families, *metrics_dispatch.families(dispatch)])
    return HttpResponse(text, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


async def _gather() -> tuple[list[Metric], dict[str, Any]]:
    if not settings.ENABLE_METRICS:  # also checked here: the URLconf is built once per process
        raise Http404("metrics are disabled (ENABLE_METRICS=false)")
    runtime.remember_loop(asyncio.get_running_loop())  # for the heartbeat's samples, taken from its own thread
    tasks = len(asyncio.all_tasks())
    return await sync_to_async(_collect, thread_sensitive=False)(tasks)


def _collect(tasks: int) -> tuple[list[Metric], dict[str, Any]]:
    return metrics.collect(asyncio_tasks=tasks), metrics_dispatch.dispatch_figures()


def _by_label(families: list[Metric], name: str, label: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for family in families:
        if family.name == name:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = sample.labels.get(label, "")
                    counts[key] = counts.get(key, 0) + _number(sample.value)
    return counts


def _number(value: float) -> int:
    return int(value)
