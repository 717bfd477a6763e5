"""Redis cache shared by every web process (`HTTP_CACHE_BACKEND=redis`).

Key `REDIS_CACHE_KEY_PREFIX + <project id> + ":" + <key>`, value the reference's JSON, Redis TTL the
entry's lifetime. Redis trouble is a cache miss, never an error to the client: after a failure the
backend stays away from Redis for a second so that a dead server costs no timeouts per request.
"""

import asyncio
import logging
import re
import time
import weakref

import redis
import redis.asyncio
from django.conf import settings

from .base import CacheBackend, CachedResponse

logger = logging.getLogger(__name__)

RETRY_AFTER = 1.0  # seconds without Redis calls after a failure
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class RedisCache(CacheBackend):
    def __init__(self, *, url: str | None = None, key_prefix: str | None = None) -> None:
        self.url = url or settings.REDIS_CACHE_URL
        self.key_prefix = settings.REDIS_CACHE_KEY_PREFIX if key_prefix is None else key_prefix
        self.timeout = settings.REDIS_CACHE_TIMEOUT
        # redis.asyncio connections belong to the loop that opened them: one client per event loop
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._down_until = 0.0

    def _client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url,
                max_connections=settings.REDIS_CACHE_POOL_SIZE,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            self._clients[loop] = client
        return client

    def _failed(self, operation: str, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            logger.warning("redis cache %s failed, serving as a miss: %s", operation, exc)
        self._down_until = time.monotonic() + RETRY_AFTER

    async def aget(self, key: str) -> CachedResponse | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            raw = await self._client().get(self.key_prefix + key)
            return CachedResponse.from_json(raw) if raw is not None else None
        except (TimeoutError, redis.RedisError, OSError) as exc:
            self._failed("get", exc)
        except (ValueError, KeyError, TypeError) as exc:  # an entry we cannot read is a miss
            logger.warning("redis cache entry %s is unreadable: %s", key, exc)
        return None

    async def aset(self, key: str, entry: CachedResponse, ttl: float) -> bool:
        if ttl <= 0 or time.monotonic() < self._down_until:
            return False
        try:
            await self._client().set(self.key_prefix + key, entry.to_json(), px=max(1, int(ttl * 1000)))
            return True
        except (TimeoutError, redis.RedisError, OSError) as exc:
            self._failed("set", exc)
            return False

    def purge(self, key: str, *, prefix: bool = False) -> int:
        """SCAN + DEL with a short-lived synchronous client (purges come from sync views and commands)."""
        pattern = glob_escape(self.key_prefix) + "*:" + glob_escape(key) + ("*" if prefix else "")
        client = redis.Redis.from_url(self.url, socket_timeout=max(self.timeout, 5.0))
        deleted = 0
        try:
            batch = []
            for raw in client.scan_iter(match=pattern, count=settings.REDIS_SCAN_COUNT):
                name = raw.decode() if isinstance(raw, bytes) else raw
                if self._matches(name, key, prefix):
                    batch.append(name)
                if len(batch) >= 500:
                    deleted += client.delete(*batch)
                    batch = []
            if batch:
                deleted += client.delete(*batch)
        finally:
            client.close()
        return deleted

    def _matches(self, name: str, key: str, prefix: bool) -> bool:
        # the glob's `*` may span ':'; only "<prefix><project>:<key>" with a ':'-free project counts
        project, sep, rest = name[len(self.key_prefix) :].partition(":")
        if not sep or not project:
            return False
        return rest.startswith(key) if prefix else rest == key

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
