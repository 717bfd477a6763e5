import uuid

import pytest
import redis

from tests.support.fake_services import FakeHelicone, FakeLunary

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def lunary_server():
    server = FakeLunary().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def helicone_server():
    server = FakeHelicone().start()
    yield server
    server.stop()


@pytest.fixture
def fake_lunary(lunary_server):
    lunary_server.reset()
    yield lunary_server
    lunary_server.reset()


@pytest.fixture
def fake_helicone(helicone_server):
    helicone_server.reset()
    yield helicone_server
    helicone_server.reset()


class Stream:
    """A test's own event stream on the shared Redis (unique key, removed afterwards)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)

    def publish(self, *events) -> list[str]:
        return [self.redis.xadd(self.key, {"data": event.to_json()}) for event in events]

    def publish_raw(self, data: str) -> str:
        return self.redis.xadd(self.key, {"data": data})

    def pending(self, group: str) -> int:
        return self.redis.xpending(self.key, group)["pending"]

    def dead_letters(self) -> list[dict]:
        return [fields for _id, fields in self.redis.xrange(f"{self.key}:dead-letter")]

    def cleanup(self) -> None:
        self.redis.delete(self.key, f"{self.key}:dead-letter")
        self.redis.close()


@pytest.fixture
def stream(settings):
    """Settings pointing at a fresh stream: redis-streams bus, fast retries, short claim time."""
    key = f"test-dispatch-{uuid.uuid4().hex[:12]}"
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = REDIS_URL
    settings.REDIS_STREAM_KEY = key
    settings.REDIS_CONSUMER_GROUP = ""
    settings.REDIS_CONSUMER_NAME = ""
    settings.DISPATCHER_RETRY_BASE = 0.01
    settings.REDIS_STREAM_CLAIM_TIME = 0.3
    settings.REDIS_STREAM_BLOCK_TIME = 0.2
    settings.DISPATCHER_FLUSH_INTERVAL = 0.2
    settings.DISPATCH_SERVICES = []
    handle = Stream(key)
    yield handle
    handle.cleanup()
