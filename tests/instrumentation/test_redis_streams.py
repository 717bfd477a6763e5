"""The Redis Streams bus against a real Redis: XADD format, trimming, consumer groups, outages."""

import json
import time

from instrumentation.bus import get_consumer
from instrumentation.bus.redis_streams import RedisStreamConsumer, RedisStreamsBus
from instrumentation.events import Event
from tests.instrumentation.conftest import REDIS_URL, Collected
from tests.support.redis_server import OwnRedis, free_port
from tests.support.waiting import await_until


def event(n: int = 0, body: bytes | None = b'{"ok":true}') -> Event:
    return Event(
        request_id=f"req-{n}",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=12_345,
        response_headers={"Content-Type": ["application/json"]},
        response_body=body,
        request_body=b"{}",
    )


def bus_on(stream_key: str, *, url: str = REDIS_URL, max_len: int = 10000, capacity: int = 10000) -> RedisStreamsBus:
    return RedisStreamsBus(url=url, stream_key=stream_key, max_len=max_len, capacity=capacity)


async def test_each_event_is_one_stream_entry_with_a_single_data_field(redis_client, stream_key):
    bus = bus_on(stream_key)
    published = [event(n) for n in range(3)]
    for e in published:
        bus.publish(e)
    assert await bus.flush()

    entries = redis_client.xrange(stream_key)
    assert [fields for _id, fields in entries] == [{"data": e.to_json()} for e in published]
    assert Event.from_json(entries[0][1]["data"]) == published[0]
    assert bus.stats()["events_published"] == 3
    await bus.stop()


async def test_the_stream_is_trimmed_to_about_max_len(redis_client, stream_key):
    bus = bus_on(stream_key, max_len=50)
    for n in range(1000):
        bus.publish(event(n, body=None))
    await bus.flush()
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the length is near, not at, 50.
    assert 50 <= redis_client.xlen(stream_key) <= 50 + 100
    await bus.stop()


async def test_max_len_zero_means_no_trimming(redis_client, stream_key):
    bus = bus_on(stream_key, max_len=0)
    for n in range(300):
        bus.publish(event(n, body=None))
    await bus.flush()
    assert redis_client.xlen(stream_key) == 300
    await bus.stop()


async def test_in_process_subscribers_see_what_is_published_to_redis(stream_key):
    bus = bus_on(stream_key)
    collected = Collected()
    bus.subscribe(collected)
    bus.publish(event(7))
    await bus.flush()
    assert [e.request_id for e in collected] == ["req-7"]
    await bus.stop()


def test_consumer_group_read_ack_and_pending_redelivery(redis_client, stream_key):
    for n in range(5):
        redis_client.xadd(stream_key, {"data": event(n).to_json()})
    consumer = RedisStreamConsumer(url=REDIS_URL, stream_key=stream_key, block_timeout=1)
    consumer.ensure_group("file")
    consumer.ensure_group("file")  # BUSYGROUP is fine

    first = consumer.read("file", "worker-1", count=3, block_ms=100)
    assert [Event.from_json(data).request_id for _id, data in first] == ["req-0", "req-1", "req-2"]
    consumer.ack("file", [first[0][0]])

    # After a crash, the same consumer first re-reads what it had not acknowledged.
    pending = consumer.read("file", "worker-1", count=10, block_ms=None, pending=True)
    assert [message_id for message_id, _ in pending] == [first[1][0], first[2][0]]

    rest = consumer.read("file", "worker-1", count=10, block_ms=100)
    assert len(rest) == 2
    assert consumer.read("file", "worker-1", count=10, block_ms=50) == []
    consumer.ack("file", [m for m, _ in pending + rest])
    assert redis_client.xpending(stream_key, "file")["pending"] == 0


def test_groups_fan_out_and_a_group_shares_out_its_entries(redis_client, stream_key):
    for n in range(4):
        redis_client.xadd(stream_key, {"data": event(n).to_json()})
    consumer = RedisStreamConsumer(url=REDIS_URL, stream_key=stream_key, block_timeout=1)
    for group in ("file", "lunary"):
        consumer.ensure_group(group)

    a = consumer.read("file", "a", count=2, block_ms=50)
    b = consumer.read("file", "b", count=10, block_ms=50)
    other = consumer.read("lunary", "x", count=10, block_ms=50)
    assert len(a) == 2 and len(b) == 2 and not {m for m, _ in a} & {m for m, _ in b}
    assert len(other) == 4


def test_a_crashed_consumers_entries_are_claimed_after_the_idle_time(redis_client, stream_key):
    for n in range(3):
        redis_client.xadd(stream_key, {"data": event(n).to_json()})
    consumer = RedisStreamConsumer(url=REDIS_URL, stream_key=stream_key, block_timeout=1)
    consumer.ensure_group("file")
    taken = consumer.read("file", "crashed", count=10, block_ms=50)

    assert consumer.claim("file", "rescuer", min_idle_ms=60_000, count=10) == []  # not idle long enough
    time.sleep(0.06)  # deliberate: past the 50 ms idle time the claim below asks for
    claimed = consumer.claim("file", "rescuer", min_idle_ms=50, count=10)
    assert claimed == taken
    consumers = {c["name"]: c["pending"] for c in redis_client.xinfo_consumers(stream_key, "file")}
    assert consumers["rescuer"] == 3 and consumers["crashed"] == 0


def test_entries_trimmed_while_pending_are_acknowledged_and_skipped(redis_client, stream_key):
    ids = [redis_client.xadd(stream_key, {"data": event(n).to_json()}) for n in range(3)]
    consumer = RedisStreamConsumer(url=REDIS_URL, stream_key=stream_key, block_timeout=1)
    consumer.ensure_group("file")
    consumer.read("file", "w", count=10, block_ms=50)
    redis_client.xdel(stream_key, ids[0])

    pending = consumer.read("file", "w", count=10, block_ms=None, pending=True)
    assert [m for m, _ in pending] == ids[1:]
    assert redis_client.xpending(stream_key, "file")["pending"] == 2


def test_get_consumer_follows_the_settings(settings, stream_key, redis_client):
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = REDIS_URL
    settings.REDIS_STREAM_KEY = stream_key
    consumer = get_consumer()
    consumer.ensure_group("g")
    assert redis_client.xinfo_groups(stream_key)[0]["name"] == "g"


async def test_publishing_never_waits_for_a_redis_that_is_down(stream_key):
    bus = bus_on(stream_key, url=f"redis://127.0.0.1:{free_port()}/0", capacity=5)
    started = time.perf_counter()
    for n in range(20):
        bus.publish(event(n))
    assert time.perf_counter() - started < 0.5  # publish does no I/O; the bound only allows for a busy machine
    await await_until(lambda: not bus.connected, message="the publisher to find Redis down")
    stats = bus.stats()
    assert stats["events_published"] == 0
    assert stats["events_dropped"] == 15  # beyond the buffer's 5
    assert stats["redis_available"] is False
    await bus.stop(grace=0.2)
    assert bus.stats()["events_dropped"] == 20


async def test_events_queued_while_redis_was_down_at_start_are_written_when_it_comes_up(stream_key):
    redis = OwnRedis()
    bus = bus_on(stream_key, url=redis.url)
    for n in range(10):
        bus.publish(event(n))
    await await_until(lambda: not bus.connected, message="the publisher to fail once and retry with backoff")
    redis.start()
    try:
        assert await bus.flush(within=5)
        client = redis.client()
        assert client.xlen(stream_key) == 10
        assert bus.stats()["events_dropped"] == 0
        bus.publish(event(11))
        await bus.flush()
        assert client.xlen(stream_key) == 11
        await bus.stop()
    finally:
        redis.stop()


async def test_a_wrong_type_key_drops_the_events_it_refuses_and_goes_on(redis_client, stream_key):
    redis_client.set(stream_key, "not a stream")
    bus = bus_on(stream_key)
    bus.publish(event(1))
    await bus.flush()
    assert bus.stats()["events_dropped"] == 1
    redis_client.delete(stream_key)
    bus.publish(event(2))
    await bus.flush()
    assert [json.loads(f["data"])["RequestID"] for _, f in redis_client.xrange(stream_key)] == ["req-2"]
    await bus.stop()
