"""Fixtures for the event capture and bus tests: a fresh bus per test, a collector, a unique Redis stream."""

import threading
import uuid

import pytest
import redis

from instrumentation.bus import get_bus, reset_for_tests

REDIS_URL = "redis://127.0.0.1:6379/0"


class Collected(list):
    """An in-process subscriber that tests can wait on from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.append(event)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self) >= count, timeout)
        return list(self)


@pytest.fixture
def memory_bus(settings):
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    reset_for_tests()
    yield get_bus()
    reset_for_tests()


@pytest.fixture
def events(memory_bus):
    """Every event the in-memory bus hands on in this test."""
    collected = Collected()
    memory_bus.subscribe(collected)
    return collected


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def stream_key(redis_client):
    key = f"test-events-{uuid.uuid4().hex}"
    yield key
    redis_client.delete(key)


@pytest.fixture
def redis_bus(settings, stream_key):
    """The process's bus switched to Redis Streams on a stream of this test's own."""
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = REDIS_URL
    settings.REDIS_STREAM_KEY = stream_key
    reset_for_tests()
    yield get_bus()
    reset_for_tests()
