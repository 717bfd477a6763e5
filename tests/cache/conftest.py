"""Cache fixtures: each test gets a fresh backend; Redis ones use a key prefix of their own (never FLUSHDB)."""

import uuid

import pytest
import redis

from llmproxy.proxy import cache_backends

REDIS_URL = "redis://127.0.0.1:6379/0"


def delete_prefixed(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["in-memory", "redis"])
def cache_backend_name(request, settings):
    """Runs the test once per backend, with the process's backend configured accordingly."""
    prefix = f"test:llmproxy:cache:{uuid.uuid4().hex}:"
    settings.HTTP_CACHE_ENABLED = True
    settings.HTTP_CACHE_BACKEND = request.param
    settings.REDIS_CACHE_URL = REDIS_URL
    settings.REDIS_CACHE_KEY_PREFIX = prefix
    cache_backends.reset_for_tests()
    yield request.param
    cache_backends.reset_for_tests()
    if request.param == "redis":
        delete_prefixed(prefix)


@pytest.fixture
def cache_backend(cache_backend_name):
    return cache_backends.get_backend()
