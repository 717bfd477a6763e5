"""The in-memory bus: bounded, fan-out to in-process subscribers, drops counted, never raises."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from instrumentation import metrics
from instrumentation.bus import get_bus, get_consumer, reset_for_tests
from instrumentation.bus.memory import InMemoryBus
from instrumentation.events import Event
from tests.instrumentation.conftest import Collected


def event(n: int = 0) -> Event:
    return Event(request_id=f"req-{n}", method="POST", path="/v1/chat/completions", status=200, duration_ns=1000)


async def test_every_subscriber_gets_every_event_in_order():
    bus = InMemoryBus(capacity=100)
    first, second = Collected(), Collected()
    bus.subscribe(first)
    bus.subscribe(second)

    for n in range(10):
        bus.publish(event(n))
    assert await bus.flush()

    assert [e.request_id for e in first] == [f"req-{n}" for n in range(10)]
    assert [e.request_id for e in second] == [f"req-{n}" for n in range(10)]
    assert bus.stats() == {
        "backend": "in-memory",
        "events_published": 10,
        "events_dropped": 0,
        "events_queued": 0,
        "bytes_queued": 0,
        "connected": True,
    }


def test_a_full_buffer_drops_new_events_and_counts_them():
    # No event loop runs here, so nothing drains the buffer.
    before = metrics.snapshot().get("events_dropped", 0)
    bus = InMemoryBus(capacity=3)
    for n in range(5):
        bus.publish(event(n))
    assert bus.stats()["events_dropped"] == 2
    assert bus.stats()["events_queued"] == 3
    assert metrics.snapshot()["events_dropped"] == before + 2


async def test_a_failing_subscriber_does_not_stop_the_others():
    bus = InMemoryBus(capacity=10)
    collected = Collected()
    bus.subscribe(lambda e: 1 / 0)
    bus.subscribe(collected)
    bus.publish(event())
    await bus.flush()
    assert len(collected) == 1


async def test_events_published_before_a_loop_ran_are_delivered_once_one_does():
    bus = InMemoryBus(capacity=10)
    collected = Collected()
    bus.subscribe(collected)
    bus._buffer.append(event(1))  # as if published from a thread without a loop
    bus.publish(event(2))
    await bus.flush()
    assert [e.request_id for e in collected] == ["req-1", "req-2"]


async def test_stop_flushes_what_is_queued():
    bus = InMemoryBus(capacity=100)
    collected = Collected()
    bus.subscribe(collected)
    for n in range(20):
        bus.publish(event(n))
    await bus.stop()
    assert len(collected) == 20


def test_the_setting_selects_the_backend(settings):
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    reset_for_tests()
    try:
        assert isinstance(get_bus(), InMemoryBus)
        assert get_bus() is get_bus()
    finally:
        reset_for_tests()


def test_dispatchers_cannot_consume_the_in_memory_bus(settings):
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    with pytest.raises(ImproperlyConfigured, match="LLM_PROXY_EVENT_BUS=redis-streams"):
        get_consumer()


async def test_a_failing_backend_loses_the_batch_not_the_publisher():
    class Flaky(InMemoryBus):
        calls = 0

        async def awrite(self, batch):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("bug")
            await super().awrite(batch)

    bus = Flaky(capacity=10)
    bus.publish(event(1))
    await bus.flush()
    bus.publish(event(2))
    await bus.flush()
    assert bus.stats()["events_dropped"] == 1 and bus.stats()["events_published"] == 1
