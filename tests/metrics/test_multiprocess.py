"""Several processes, one scrape: a web worker and a Celery-like worker share PROMETHEUS_MULTIPROC_DIR."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings

from tests.conftest import MANAGEMENT_TOKEN
from tests.metrics.conftest import Scrape
from tests.support.waiting import wait_until_serving

# What a Celery worker does: count, then keep running (its live gauges stay until it exits).
WORKER = """
import sys, django
django.setup()
from instrumentation import metrics
for _ in range(4):
    metrics.count("requests", status_class="2xx")
metrics.count("errors")
metrics.count("cache_hits", 3)
metrics.observe("upstream_ttfb_seconds", 0.25)
print("ready", flush=True)
sys.stdin.read()
"""
HEALTH_VIEW = {"method": "GET", "transport": "http", "view": "llmproxy.health.health"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def environment(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PROMETHEUS", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="llmproxy.settings",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),  # created by the first process
        MANAGEMENT_TOKEN=MANAGEMENT_TOKEN,
        LLM_PROXY_EVENT_BUS="in-memory",
        DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PYTHONPATH=str(settings.BASE_DIR),
    )
    processes = []

    def start(*args, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, *args], env=env, cwd=settings.BASE_DIR, **kwargs)
        processes.append(process)
        return process

    yield start, tmp_path / "prometheus"
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)


def start_web(start) -> str:
    port = free_port()
    start("-m", "uvicorn", "llmproxy.asgi:application", "--port", str(port), "--log-level", "warning")
    return f"http://127.0.0.1:{port}"


def test_a_web_worker_serves_the_totals_of_every_process_sharing_the_folder(environment):
    start, folder = environment
    web = start_web(start)
    workers = [start("-c", WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    wait_until_serving(web)
    for _ in range(3):
        assert httpx.get(web + "/health").status_code == 200

    scrape = Scrape(httpx.get(web + "/metrics/prometheus").text)
    assert scrape.value("django_http_requests_total_by_view_transport_method_total", **HEALTH_VIEW) == 3
    # Counted in the two other processes only:
    assert scrape.value("llm_proxy_requests_total") == 8
    assert scrape.value("llm_proxy_requests_by_status_class_total", status_class="2xx") == 8
    assert scrape.value("llm_proxy_errors_total") == 2
    assert scrape.value("llm_proxy_cache_hits_total") == 6
    assert scrape.value("llm_proxy_upstream_ttfb_seconds_count") == 2
    # Live gauges are sums over the live processes: three of them, each with at least one thread.
    assert scrape.value("llm_proxy_python_threads") >= 3
    assert scrape.value("llm_proxy_memory_sys_bytes") > 3 * 10_000_000
    body = httpx.get(web + "/metrics").json()
    assert (body["request_count"], body["error_count"], body["cache_hits"]) == (8, 2, 6)

    finished, killed = workers
    finished.stdin.close()  # exits normally: what it counted stays, its live gauges go
    assert finished.wait(15) == 0
    killed.kill()  # dies without cleaning up: the next scrape notices its PID is gone
    killed.wait(15)
    after = Scrape(httpx.get(web + "/metrics/prometheus").text)
    assert after.value("llm_proxy_requests_total") == 8
    for worker in workers:
        assert not list(folder.glob(f"gauge_live*-{worker.pid}.db"))
    assert list(folder.glob("gauge_live*.db"))  # the web worker's are still there


def test_live_gauges_of_other_hosts_count_only_while_their_heartbeat_is_fresh(tmp_path, monkeypatch):
    from instrumentation import multiprocess

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("counter_other-host-7.db", "gauge_livesum_other-host-7.db", "gauge_livesum_other-host-8.db"):
        (tmp_path / name).write_bytes(b"")
    old = time.time() - multiprocess.STALE_AFTER - 5
    os.utime(tmp_path / "gauge_livesum_other-host-7.db", (old, old))
    os.utime(tmp_path / "counter_other-host-7.db", (old, old))
    kept = sorted(os.path.basename(name) for name in multiprocess.files_to_merge())
    assert kept == ["counter_other-host-7.db", "gauge_livesum_other-host-8.db"]


# A web process whose Redis is down: it holds its events and says it is not connected.
PUBLISHER = """
import asyncio, os, sys
os.environ.update(LLM_PROXY_EVENT_BUS="redis-streams", REDIS_URL=sys.argv[1])
import django
django.setup()
from instrumentation import metrics_runtime
from instrumentation.bus import get_bus
from instrumentation.events import Event
from tests.support.waiting import await_until

async def main():
    bus = get_bus()
    for n in range(5):
        bus.publish(Event(request_id=str(n), method="POST", path="/v1/chat/completions", status=200,
                          duration_ns=1, request_body=b"q" * 1000, response_body=b"a" * 5000))
    await await_until(lambda: not bus.connected, timeout=10, interval=0.02, message="the bus to see Redis is down")
    metrics_runtime.refresh()  # what its heartbeat does every few seconds
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)

asyncio.run(main())
"""


def test_events_waiting_in_every_process_are_summed_and_one_disconnected_bus_shows(environment):
    from instrumentation.bus.queued import EVENT_OVERHEAD_BYTES

    start, _folder = environment
    web = start_web(start)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    publishers = [start("-c", PUBLISHER, closed, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)]
    publishers.append(start("-c", PUBLISHER, closed, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for publisher in publishers:
        assert publisher.stdout.readline().strip() == "ready"
    wait_until_serving(web)

    scrape = Scrape(httpx.get(web + "/metrics/prometheus").text)
    assert scrape.value("llm_proxy_event_buffer_events") == 10
    assert scrape.value("llm_proxy_event_buffer_bytes") == 10 * (6000 + EVENT_OVERHEAD_BYTES)
    assert scrape.value("llm_proxy_event_bus_connected") == 0  # the web process's own bus is fine; theirs are not
    shown = httpx.get(web + "/metrics").json()["event_bus"]
    assert (shown["connected"], shown["waiting_events"]) == (False, 10)
    for publisher in publishers:
        publisher.stdin.close()
        publisher.wait(15)
    after = Scrape(httpx.get(web + "/metrics/prometheus").text)
    assert after.value("llm_proxy_event_buffer_events") == 0  # gone with their processes
    assert after.value("llm_proxy_event_bus_connected") == 1
