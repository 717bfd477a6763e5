"""/metrics and /metrics/prometheus show the publish buffer (events, bytes), the bus's connection and group lag."""

import logging
import socket
import uuid

import pytest
import redis

from instrumentation import metrics_dispatch
from instrumentation.bus import get_bus, reset_for_tests
from instrumentation.bus.queued import EVENT_OVERHEAD_BYTES
from instrumentation.events import Event
from tests.metrics.conftest import Scrape
from tests.support.redis_server import OwnRedis
from tests.support.waiting import await_until


def event(n: int) -> Event:
    return Event(
        request_id=f"req-{n}",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=1000,
        request_body=b"q" * 1000,
        response_body=b"a" * 5000,
    )


EVENT_BYTES = 6000 + EVENT_OVERHEAD_BYTES


async def figures(async_client) -> tuple[dict, Scrape]:
    body = (await async_client.get("/metrics")).json()
    text = (await async_client.get("/metrics/prometheus")).content.decode()
    return body["event_bus"], Scrape(text)


@pytest.fixture
def memory_bus(settings):
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    reset_for_tests()
    yield get_bus()
    reset_for_tests()


@pytest.fixture
def own_redis():
    server = OwnRedis()  # a free port: nothing listens there until the test starts it
    yield server
    server.stop()


@pytest.fixture
def bus_on_own_redis(settings, own_redis):
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = own_redis.url
    settings.REDIS_STREAM_KEY = f"test-buffer-{uuid.uuid4().hex}"
    reset_for_tests()
    yield get_bus()
    reset_for_tests()


async def test_events_waiting_while_redis_is_down_are_shown_then_written_when_it_returns(
    async_client, bus_on_own_redis, own_redis, settings
):
    bus = bus_on_own_redis
    for n in range(20):
        bus.publish(event(n))
    await await_until(lambda: not bus.connected, interval=0.02, message="the bus to see Redis is down")

    shown, scrape = await figures(async_client)
    # All 20 are in the batch the publisher holds while it retries: the held batch counts as waiting.
    assert shown == {
        "backend": "redis-streams",
        "connected": False,
        "waiting_events": 20,
        "waiting_bytes": 20 * EVENT_BYTES,
    }
    assert scrape.value("llm_proxy_event_buffer_events") == 20
    assert scrape.value("llm_proxy_event_buffer_bytes") == 20 * EVENT_BYTES
    assert scrape.value("llm_proxy_event_bus_connected") == 0

    own_redis.start()
    assert await bus.flush(within=10)
    assert own_redis.client().xlen(settings.REDIS_STREAM_KEY) == 20
    shown, scrape = await figures(async_client)
    assert shown == {"backend": "redis-streams", "connected": True, "waiting_events": 0, "waiting_bytes": 0}
    assert scrape.value("llm_proxy_event_buffer_events") == 0
    assert scrape.value("llm_proxy_event_buffer_bytes") == 0
    assert scrape.value("llm_proxy_event_bus_connected") == 1
    await bus.stop()


async def test_events_past_the_byte_bound_are_dropped_and_counted_in_both_endpoints(
    async_client, settings, bus_on_own_redis
):
    settings.OBSERVABILITY_BUFFER_BYTES = 5 * EVENT_BYTES
    reset_for_tests()
    bus = get_bus()
    before = (await async_client.get("/metrics")).json()["events_dropped"]
    for n in range(8):
        bus.publish(event(n))
    await await_until(lambda: not bus.connected, interval=0.02, message="the bus to see Redis is down")

    body = (await async_client.get("/metrics")).json()
    assert body["events_dropped"] - before == 3
    assert body["event_bus"]["waiting_events"] == 5
    assert body["event_bus"]["waiting_bytes"] == 5 * EVENT_BYTES
    _, scrape = await figures(async_client)
    assert scrape.value("llm_proxy_event_buffer_bytes") <= settings.OBSERVABILITY_BUFFER_BYTES
    await bus.stop(grace=0.1)


async def test_the_in_memory_bus_is_connected_and_has_nothing_waiting_once_drained(async_client, memory_bus):
    memory_bus.publish(event(1))
    assert await memory_bus.flush()
    shown, scrape = await figures(async_client)
    assert shown == {"backend": "in-memory", "connected": True, "waiting_events": 0, "waiting_bytes": 0}
    assert scrape.value("llm_proxy_event_bus_connected") == 1


# --- consumer-group lag against REDIS_STREAM_MAX_LEN ------------------------------------------------------


@pytest.fixture
def stream(settings):
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_STREAM_KEY = f"test-lag-{uuid.uuid4().hex}"
    settings.REDIS_STREAM_MAX_LEN = 10
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client, settings.REDIS_STREAM_KEY
    client.delete(settings.REDIS_STREAM_KEY)


def service_name() -> str:
    return f"svc{uuid.uuid4().hex[:8]}"  # the warning is throttled per service: a name of this test's own


def test_a_group_lag_past_80_percent_of_max_len_is_shown_per_group_and_logged(client, scrape, stream, caplog):
    r, key = stream
    behind, keeping_up = service_name(), service_name()
    r.xgroup_create(key, "llm-proxy-dispatchers-" + behind, id="0", mkstream=True)
    for _ in range(9):
        r.xadd(key, {"data": "{}"})
    r.xgroup_create(key, "llm-proxy-dispatchers-" + keeping_up, id="$")

    with caplog.at_level(logging.WARNING, logger="instrumentation.metrics_dispatch"):
        services = client.get("/metrics").json()["dispatch"]["services"]
    assert services[behind]["lag"] == 9
    assert services[keeping_up]["lag"] == 0
    served = scrape()
    assert served.value("llm_proxy_dispatch_lag", service=behind) == 9
    assert served.value("llm_proxy_dispatch_lag", service=keeping_up) == 0
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(f"the {behind} dispatchers are 9 entries behind" in message for message in warnings), warnings
    assert not any(keeping_up in message for message in warnings)


def test_a_lag_of_80_percent_or_less_logs_no_warning(client, stream, caplog):
    r, key = stream
    service = service_name()
    r.xgroup_create(key, "llm-proxy-dispatchers-" + service, id="0", mkstream=True)
    for _ in range(8):
        r.xadd(key, {"data": "{}"})
    with caplog.at_level(logging.WARNING, logger="instrumentation.metrics_dispatch"):
        assert client.get("/metrics").json()["dispatch"]["services"][service]["lag"] == 8
    assert service not in caplog.text


def test_a_redis_that_never_answers_is_asked_once_per_few_seconds_and_metrics_still_answer(
    client, scrape, settings, monkeypatch
):
    monkeypatch.setattr(metrics_dispatch, "CACHE_SECONDS", 60.0)  # the second scrape surely falls within it
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings.LLM_PROXY_EVENT_BUS = "redis-streams"
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        assert client.get("/metrics").json()["dispatch"]["status"] == "redis_unavailable"
        assert scrape().value("llm_proxy_dispatch_stats_up") == 0
        silent.setblocking(False)
        connections = 0
        while True:
            try:
                silent.accept()[0].close()
                connections += 1
            except BlockingIOError:
                break
    # Both scrapes within CACHE_SECONDS: one connection, one timeout, no retries.
    assert connections == 1
