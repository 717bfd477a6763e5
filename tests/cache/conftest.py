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
def memory_cache(settings):
    """The in-memory backend only, for behaviour that does not depend on the backend."""
    settings.HTTP_CACHE_ENABLED = True
    settings.HTTP_CACHE_BACKEND = "in-memory"
    cache_backends.reset_for_tests()
    yield
    cache_backends.reset_for_tests()


@pytest.fixture
def cache_backend(cache_backend_name):
    return cache_backends.get_backend()


@pytest.fixture
def http(proxy_server):
    """An httpx client on the proxy that sends no Accept* headers, so keys match what an exact purge computes."""
    import httpx

    with httpx.Client(base_url=proxy_server.url, timeout=10) as client:
        for name in ("Accept", "Accept-Encoding"):
            client.headers.pop(name, None)
        yield client


@pytest.fixture
def auth(token_pair):
    return {"Authorization": f"Bearer {token_pair[1]}"}
