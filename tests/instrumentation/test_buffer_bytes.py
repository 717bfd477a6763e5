"""The publish buffer is bounded in bytes as well as in events, the batch held for retry included."""

import asyncio
import gc
import logging

from instrumentation.bus.memory import InMemoryBus
from instrumentation.bus.queued import EVENT_OVERHEAD_BYTES, event_size
from instrumentation.bus.redis_streams import RedisStreamsBus
from instrumentation.events import Event
from tests.instrumentation.conftest import REDIS_URL
from tests.support.redis_server import free_port

MB = 1024 * 1024


def event(n: int, *, request: int = 0, response: int = 0) -> Event:
    # Bodies built at run time, one object per event, so each event really holds its bytes.
    return Event(
        request_id=f"req-{n}",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=1000,
        request_body=(b"%08d" % n) * (request // 8),
        response_body=(b"%08d" % n) * (response // 8),
    )


def rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_an_events_size_is_its_bodies_plus_a_fixed_overhead():
    assert event_size(event(1, request=1000, response=5000)) == 6000 + EVENT_OVERHEAD_BYTES
    assert event_size(Event(request_id="r", method="GET", path="/v1/models", status=401, duration_ns=1)) == (
        EVENT_OVERHEAD_BYTES
    )


def test_a_full_byte_bound_drops_new_events_and_says_why(caplog):
    # No event loop runs here, so nothing drains the buffer.
    bus = InMemoryBus(capacity=1000, max_bytes=5 * (4096 + EVENT_OVERHEAD_BYTES))
    with caplog.at_level(logging.WARNING, logger="instrumentation.bus"):
        for n in range(8):
            bus.publish(event(n, response=4096))
    stats = bus.stats()
    assert stats["events_queued"] == 5
    assert stats["bytes_queued"] == 5 * (4096 + EVENT_OVERHEAD_BYTES)
    assert stats["events_dropped"] == 3
    assert f"the publish buffer is full ({bus.max_bytes} bytes)" in caplog.text


def test_an_event_larger_than_the_byte_bound_is_dropped_and_counted(caplog):
    bus = InMemoryBus(capacity=1000, max_bytes=64 * 1024)
    with caplog.at_level(logging.WARNING, logger="instrumentation.bus"):
        bus.publish(event(1, response=100 * 1024))
        bus.publish(event(2, response=1024))
    assert bus.stats()["events_dropped"] == 1
    assert bus.stats()["events_queued"] == 1
    assert "is larger than the byte bound (65536)" in caplog.text


async def test_200_mb_of_events_while_redis_is_down_hold_at_most_the_byte_bound():
    bound = 16 * MB
    bus = RedisStreamsBus(
        url=f"redis://127.0.0.1:{free_port()}/0", stream_key="unused", max_len=0, capacity=1_000_000, max_bytes=bound
    )
    gc.collect()
    before, largest = rss(), 0
    for n in range(640):  # 640 x 320 KiB = 200 MiB of captured bodies
        bus.publish(event(n, request=64 * 1024, response=256 * 1024))
        largest = max(largest, bus.stats()["bytes_queued"])
        if n % 16 == 0:
            await asyncio.sleep(0)  # lets the publisher take a batch and hold it while it retries
    stats = bus.stats()
    grown = rss() - before
    assert stats["connected"] is False
    assert largest <= bound
    assert stats["events_dropped"] > 500
    assert stats["events_queued"] + stats["events_dropped"] == 640
    assert grown < bound + 48 * MB, f"RSS grew by {grown / MB:.0f} MB"
    await bus.stop(grace=0.1)
    assert bus.stats()["bytes_queued"] == 0


async def test_the_publisher_warns_when_a_group_lags_past_80_percent_of_max_len(redis_client, stream_key, caplog):
    service = f"svc{stream_key[-8:]}"  # the warning is throttled per service: a name of this test's own
    redis_client.xgroup_create(stream_key, "llm-proxy-dispatchers-" + service, id="0", mkstream=True)
    bus = RedisStreamsBus(url=REDIS_URL, stream_key=stream_key, max_len=10, capacity=100)
    with caplog.at_level(logging.WARNING, logger="instrumentation.metrics_dispatch"):
        for n in range(9):
            bus.publish(event(n, response=100))
        assert await bus.flush()
        await bus.stop()
    assert f"the {service} dispatchers are 9 entries behind, over 80% of REDIS_STREAM_MAX_LEN=10" in caplog.text
