"""docker/grafana/llm-proxy.json: ready to import, and every query uses metrics the endpoint really serves."""

import json
import re

from django.conf import settings

DASHBOARD = settings.BASE_DIR / "docker" / "grafana" / "llm-proxy.json"
METRIC_NAME = re.compile(r"\b(?:llm_proxy|process|python|django)_[a-zA-Z0-9_]+\b")


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_metric_in_the_dashboards_queries_is_served_by_the_endpoint(client, scrape):
    client.get("/health")  # django-prometheus's families exist once a request went through
    served = scrape().names()
    used = {name for expr in queries(load()) for name in METRIC_NAME.findall(expr)}
    assert used, "the dashboard has no queries"
    assert sorted(used - served) == []


def test_the_dashboard_has_the_guides_panels():
    used = " ".join(queries(load()))
    for metric in (
        "llm_proxy_requests_total", "llm_proxy_errors_total", "llm_proxy_uptime_seconds",
        "llm_proxy_cache_hits_total", "llm_proxy_cache_misses_total", "llm_proxy_cache_bypass_total",
        "llm_proxy_cache_stores_total", "llm_proxy_memory_heap_alloc_bytes", "llm_proxy_memory_total_alloc_bytes",
        "llm_proxy_gc_runs_total", "llm_proxy_gc_pause_total_seconds", "llm_proxy_goroutines",
        "llm_proxy_overhead_seconds_bucket", "llm_proxy_upstream_ttfb_seconds_bucket", "llm_proxy_dispatch_lag",
    ):  # fmt: skip
        assert metric in used, metric
    titles = {panel["title"] for panel in load()["panels"]}
    assert {"Request rate", "Error rate", "Uptime", "Cache hit ratio", "Memory", "Dispatch lag"} <= titles


def test_the_dashboard_asks_for_a_prometheus_data_source():
    dashboard = load()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    assert dashboard["uid"] == "llm-proxy" and "id" not in dashboard  # importable anywhere, stable links
