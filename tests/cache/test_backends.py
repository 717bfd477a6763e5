"""Both cache backends behave alike: store with a TTL, expire, purge across projects; Redis trouble is a miss."""

import asyncio
import socket
import uuid

import pytest
import redis

from llmproxy.proxy.cache_backends import CachedResponse, scoped_key
from llmproxy.proxy.cache_backends.memory import MemoryCache
from llmproxy.proxy.cache_backends.redis import RedisCache
from tests.cache.conftest import REDIS_URL, delete_prefixed

KEY = "a" * 64


def entry(body: bytes = b'{"ok":true}', **kwargs) -> CachedResponse:
    return CachedResponse(status_code=200, headers={"Content-Type": ["application/json"]}, body=body, **kwargs)


async def test_an_entry_comes_back_as_stored(cache_backend):
    stored = entry(b"\x00binary\xff", vary="Accept", vary_key="k")
    assert await cache_backend.aset(scoped_key("p1", KEY), stored, 60)
    got = await cache_backend.aget(scoped_key("p1", KEY))
    assert (got.status_code, got.headers, got.body, got.vary, got.vary_key) == (
        200,
        {"Content-Type": ["application/json"]},
        b"\x00binary\xff",
        "Accept",
        "k",
    )


async def test_entries_are_scoped_per_project(cache_backend):
    await cache_backend.aset(scoped_key("p1", KEY), entry(), 60)
    assert await cache_backend.aget(scoped_key("p2", KEY)) is None


async def test_entries_expire(cache_backend):
    await cache_backend.aset(scoped_key("p1", KEY), entry(), 0.05)
    await asyncio.sleep(0.1)  # deliberate: past the entry's 50 ms lifetime, which is what is under test
    assert await cache_backend.aget(scoped_key("p1", KEY)) is None


async def test_exact_purge_removes_the_key_in_every_project(cache_backend):
    for project in ("p1", "p2"):
        await cache_backend.aset(scoped_key(project, KEY), entry(), 60)
    await cache_backend.aset(scoped_key("p1", "b" * 64), entry(), 60)
    assert cache_backend.purge(KEY) == 2
    assert await cache_backend.aget(scoped_key("p1", KEY)) is None
    assert await cache_backend.aget(scoped_key("p1", "b" * 64)) is not None
    assert cache_backend.purge(KEY) == 0


async def test_prefix_purge_matches_the_start_of_the_key(cache_backend):
    await cache_backend.aset(scoped_key("p1", "abc1" + "0" * 60), entry(), 60)
    await cache_backend.aset(scoped_key("p2", "abc2" + "0" * 60 + "|body=ff"), entry(), 60)
    await cache_backend.aset(scoped_key("p1", "abd" + "0" * 61), entry(), 60)
    assert cache_backend.purge("abc", prefix=True) == 2
    assert await cache_backend.aget(scoped_key("p1", "abd" + "0" * 61)) is not None


async def test_purge_treats_glob_characters_literally(cache_backend):
    await cache_backend.aset(scoped_key("p1", KEY), entry(), 60)
    assert cache_backend.purge("*", prefix=True) == 0
    assert cache_backend.purge("[a]", prefix=True) == 0


async def test_memory_cache_evicts_the_least_recently_used_entry():
    cache = MemoryCache(max_entries=2, max_bytes=10**6)
    await cache.aset("p:a", entry(), 60)
    await cache.aset("p:b", entry(), 60)
    await cache.aget("p:a")
    await cache.aset("p:c", entry(), 60)
    assert [await cache.aget(k) is not None for k in ("p:a", "p:b", "p:c")] == [True, False, True]


async def test_memory_cache_is_bounded_by_bytes():
    cache = MemoryCache(max_entries=100, max_bytes=2000)
    for i in range(5):
        assert await cache.aset(f"p:{i}", entry(b"x" * 600), 60)
    assert len(cache) == 2 and cache.bytes_used <= 2000
    assert not await cache.aset("p:big", entry(b"x" * 5000), 60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_redis_is_a_miss_not_an_error(settings):
    cache = RedisCache(url=f"redis://127.0.0.1:{free_port()}/0", key_prefix="test:unreachable:")
    assert not await cache.aset("p:" + KEY, entry(), 60)
    assert await cache.aget("p:" + KEY) is None
    with pytest.raises((redis.RedisError, OSError)):  # a purge, unlike a lookup, must tell the operator it did nothing
        cache.purge(KEY)


async def test_redis_serves_more_concurrent_lookups_than_its_pool_has_connections(settings):
    settings.REDIS_CACHE_POOL_SIZE = 2
    prefix = f"test:pool:{uuid.uuid4().hex}:"
    cache = RedisCache(url=REDIS_URL, key_prefix=prefix)
    try:
        await cache.aset("p:" + KEY, entry(), 60)
        results = await asyncio.gather(*[cache.aget("p:" + KEY) for _ in range(20)])
        assert all(r is not None and r.body == b'{"ok":true}' for r in results)
    finally:
        await cache.aclose()
        delete_prefixed(prefix)


async def test_a_redis_that_never_answers_is_a_miss_after_the_timeout(settings):
    settings.REDIS_CACHE_TIMEOUT = 0.2
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never replies
    try:
        cache = RedisCache(url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0", key_prefix="test:silent:")
        started = asyncio.get_running_loop().time()
        assert await cache.aget("p:" + KEY) is None
        assert asyncio.get_running_loop().time() - started < 2
        assert await cache.aget("p:" + KEY) is None  # and the next lookup does not wait again
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        silent.close()
