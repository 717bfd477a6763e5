"""Cache fixtures: each test gets a fresh backend; Redis ones use a key prefix of their own (never FLUSHDB)."""

import uuid

import pytest
import redis

from llmproxy.proxy import state
from llmproxy.proxy.cache_backends import BackendHolder

REDIS_URL = "redis://127.0.0.1:6379/0"


def delete_prefixed(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def fresh_backend() -> None:
    """A new backend holder in the process's runtime: the next lookup makes a backend from the settings."""
    state.runtime().cache = BackendHolder()


@pytest.fixture(params=["in-memory", "redis"])
def cache_backend_name(request, settings):
    """Runs the test once per backend, with the process's backend configured accordingly."""
    prefix = f"test:llmproxy:cache:{uuid.uuid4().hex}:"
    settings.HTTP_CACHE_ENABLED = True
    settings.HTTP_CACHE_BACKEND = request.param
    settings.REDIS_CACHE_URL = REDIS_URL
    settings.REDIS_CACHE_KEY_PREFIX = prefix
    fresh_backend()
    yield request.param
    fresh_backend()
    if request.param == "redis":
        delete_prefixed(prefix)


@pytest.fixture
def memory_cache(settings):
    """The in-memory backend only, for behaviour that does not depend on the backend."""
    settings.HTTP_CACHE_ENABLED = True
    settings.HTTP_CACHE_BACKEND = "in-memory"
    fresh_backend()
    yield
    fresh_backend()


@pytest.fixture
def cache_backend(cache_backend_name):
    return state.runtime().cache.get()


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
