"""/metrics JSON, ENABLE_METRICS, METRICS_PATH, and the dispatch figures read from Redis."""

import importlib
import socket
import uuid
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from django.urls import clear_url_caches

from instrumentation import metrics

REFERENCE_FIELDS = {
    "uptime_seconds", "request_count", "error_count", "cache_hits", "cache_misses", "cache_bypass", "cache_stores",
}  # fmt: skip


@contextmanager
def urls_built_with(**overrides):
    """The URLconf is built once per process from settings: rebuild it as a process started with `overrides`."""
    import instrumentation.urls
    import llmproxy.urls

    def rebuild():
        importlib.reload(instrumentation.urls)
        importlib.reload(llmproxy.urls)
        clear_url_caches()

    try:
        with override_settings(**overrides):
            rebuild()
            yield
    finally:
        rebuild()  # with the real settings again, also when the test failed


def test_json_metrics_have_the_reference_fields_and_the_event_figures(client):
    metrics.count("requests", status_class="4xx")
    body = client.get("/metrics").json()
    assert REFERENCE_FIELDS | {"events_published", "events_dropped", "dispatch"} <= set(body)
    assert all(isinstance(body[field], int) for field in REFERENCE_FIELDS - {"uptime_seconds"})
    assert body["uptime_seconds"] > 0
    assert body["requests_by_status_class"]["4xx"] >= 1
    assert sum(body["requests_by_status_class"].values()) == body["request_count"]


def test_json_counts_follow_the_counters(client):
    before = client.get("/metrics").json()
    metrics.count("requests", status_class="2xx")
    metrics.count("requests", status_class="5xx")
    metrics.count("errors")
    metrics.count("cache_hits")
    metrics.count("cache_stores")
    after = client.get("/metrics").json()
    moved = {field: after[field] - before[field] for field in ("request_count", "error_count", "cache_hits")}
    assert moved == {"request_count": 2, "error_count": 1, "cache_hits": 1}
    assert after["cache_stores"] - before["cache_stores"] == 1


def test_metrics_need_no_authentication_and_answer_get_only(client):
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405


def test_enable_metrics_false_gives_404_on_both_endpoints(client):
    with urls_built_with(ENABLE_METRICS=False):
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics/prometheus").status_code == 404
    assert client.get("/metrics").status_code == 200


def test_metrics_switched_off_at_run_time_give_404(client, settings):
    settings.ENABLE_METRICS = False
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics/prometheus").status_code == 404


def test_metrics_path_is_respected(client):
    with urls_built_with(METRICS_PATH="/internal/stats"):
        assert client.get("/internal/stats").status_code == 200
        assert client.get("/internal/stats/prometheus").content.startswith(b"# HELP llm_proxy_uptime_seconds")
        assert client.get("/metrics").status_code == 404


# --- dispatch figures -------------------------------------------------------------------------------------


@pytest.fixture
def stream(settings):
    """A fresh event stream in the shared Redis, with LLM_PROXY_EVENT_BUS=redis-streams."""
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_STREAM_KEY = f"test-metrics-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client, settings.REDIS_STREAM_KEY
    client.delete(settings.REDIS_STREAM_KEY, settings.REDIS_STREAM_KEY + ":dead-letter")


def test_dispatch_lag_pending_and_dead_letters_are_read_per_service(client, scrape, stream):
    r, key = stream
    for i in range(5):
        r.xadd(key, {"data": f'{{"RequestID": "{i}"}}'})
    r.xgroup_create(key, "llm-proxy-dispatchers-file", id="0")
    r.xgroup_create(key, "llm-proxy-dispatchers-lunary", id="$")
    delivered = r.xreadgroup("llm-proxy-dispatchers-file", "worker-1", {key: ">"}, count=3)[0][1]
    r.xack(key, "llm-proxy-dispatchers-file", delivered[0][0])
    r.xadd(key + ":dead-letter", {"service": "file", "reason": "HTTP 400", "data": "{}"})

    services = client.get("/metrics").json()["dispatch"]["services"]
    assert services["file"] == {"lag": 2, "pending": 2, "dead_letter": 1}
    assert services["lunary"] == {"lag": 0, "pending": 0, "dead_letter": 0}
    served = scrape()
    assert served.value("llm_proxy_dispatch_lag", service="file") == 2
    assert served.value("llm_proxy_dispatch_pending", service="file") == 2
    assert served.value("llm_proxy_dispatch_dead_letter", service="file") == 1
    assert served.value("llm_proxy_dispatch_stats_up") == 1


def test_lag_is_counted_when_redis_cannot_tell_it_after_deletions(client, stream):
    r, key = stream
    ids = [r.xadd(key, {"data": "{}"}) for _ in range(5)]
    r.xgroup_create(key, "llm-proxy-dispatchers-helicone", id="0")
    r.xreadgroup("llm-proxy-dispatchers-helicone", "worker-1", {key: ">"}, count=1)
    r.xdel(key, ids[2])  # a tombstone after the group's position: XINFO GROUPS reports lag as nil
    assert r.xinfo_groups(key)[0]["lag"] is None
    assert client.get("/metrics").json()["dispatch"]["services"]["helicone"] == {
        "lag": 3,
        "pending": 1,
        "dead_letter": 0,
    }


def test_a_configured_service_without_a_group_yet_is_behind_by_the_whole_stream(client, stream, settings):
    r, key = stream
    for _ in range(3):
        r.xadd(key, {"data": "{}"})
    settings.DISPATCH_SERVICES = ["usage"]
    assert client.get("/metrics").json()["dispatch"]["services"]["usage"] == {"lag": 3, "pending": 0, "dead_letter": 0}


def test_metrics_answer_when_redis_is_down(client, scrape, settings):
    with socket.socket() as sock:  # a port nobody listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    body = client.get("/metrics").json()
    assert body["dispatch"] == {"status": "redis_unavailable", "services": {}}
    assert scrape().value("llm_proxy_dispatch_stats_up") == 0


def test_no_dispatch_figures_with_the_in_memory_bus(client):
    assert settings.LLM_PROXY_EVENT_BUS == "in-memory"
    assert client.get("/metrics").json()["dispatch"] == {"status": "not_applicable", "services": {}}
