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
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from redis.asyncio.connection import AbstractConnection

from llmproxy import redis as redis_clients

from .base import CacheBackend, CachedResponse

logger = logging.getLogger(__name__)

RETRY_AFTER = 1.0  # seconds without Redis calls after a failure
# Decoded entries kept per process, reused while Redis returns the same bytes (most hits): at most
# DECODED_MAX of at most DECODED_MAX_BYTES each.
DECODED_MAX = 256
DECODED_MAX_BYTES = 65536
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class _Connections:
    """The connections of one event loop: at most REDIS_CACHE_POOL_SIZE, each used by one command at a time.

    A hit is one GET on the request path, so this skips redis-py's client and pool (per command they
    take locks, check the socket for stale data and start a timer for the write and another for the
    read, which cost more CPU than the rest of a cache hit). Connections come from redis-py's own
    factory, so URLs, AUTH, database selection and TLS work as everywhere else.
    """

    def __init__(self, url: str, size: int, timeout: float) -> None:
        self.timeout = timeout
        # Not llmproxy.redis's pool: no socket timeout, one deadline per command instead (below), since a
        # socket timeout starts a timer on every read of a cache hit. redis-py still makes the connections.
        self._factory = redis.asyncio.ConnectionPool.from_url(url, socket_connect_timeout=timeout)
        self._idle: list[AbstractConnection] = []
        self._slots = asyncio.Semaphore(size)

    async def execute(self, packed: bytes) -> Any:
        async with asyncio.timeout(self.timeout):
            async with self._slots:
                connection: AbstractConnection = (
                    # redis-py leaves make_connection unannotated
                    self._idle.pop() if self._idle else self._factory.make_connection()  # type: ignore[no-untyped-call]
                )
                try:
                    await connection.send_packed_command(packed, check_health=False)
                    reply = await connection.read_response(disable_decoding=True)
                except BaseException:
                    await connection.disconnect(nowait=True)  # never reuse a connection with an unread reply
                    raise
                self._idle.append(connection)
                return reply

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect(nowait=True)


def pack(*args: bytes) -> bytes:
    """A command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class RedisCache(CacheBackend):
    def __init__(self, *, url: str | None = None, key_prefix: str | None = None) -> None:
        self.url = url or settings.REDIS_CACHE_URL
        self.key_prefix = settings.REDIS_CACHE_KEY_PREFIX if key_prefix is None else key_prefix
        self.timeout = settings.REDIS_CACHE_TIMEOUT
        # redis.asyncio connections belong to the loop that opened them: one set per event loop
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connections] = weakref.WeakKeyDictionary()
        self._down_until = 0.0
        self._decoded: dict[str, tuple[bytes, CachedResponse]] = {}

    def _connections(self) -> _Connections:
        loop = asyncio.get_running_loop()
        connections = self._loops.get(loop)
        if connections is None:
            connections = self._loops[loop] = _Connections(self.url, settings.REDIS_CACHE_POOL_SIZE, self.timeout)
        return connections

    def _failed(self, operation: str, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            logger.warning("redis cache %s failed, serving as a miss: %s", operation, exc)
        self._down_until = time.monotonic() + RETRY_AFTER

    async def aget(self, key: str) -> CachedResponse | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            raw = await self._connections().execute(pack(b"GET", (self.key_prefix + key).encode()))
            return None if raw is None else self._decode(key, raw)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            self._failed("get", exc)
        except (ValueError, KeyError, TypeError) as exc:  # an entry we cannot read is a miss
            logger.warning("redis cache entry %s is unreadable: %s", key, exc)
        return None

    async def aset(self, key: str, entry: CachedResponse, ttl: float) -> bool:
        if ttl <= 0 or time.monotonic() < self._down_until:
            return False
        milliseconds = str(max(1, int(ttl * 1000))).encode()
        try:
            command = pack(b"SET", (self.key_prefix + key).encode(), entry.to_json(), b"PX", milliseconds)
            await self._connections().execute(command)
            return True
        except (TimeoutError, redis.RedisError, OSError) as exc:
            self._failed("set", exc)
            return False

    def _decode(self, key: str, raw: bytes) -> CachedResponse:
        known = self._decoded.get(key)
        if known is not None and known[0] == raw:
            return known[1]  # with the response headers it prepared on an earlier hit
        entry = CachedResponse.from_json(raw)
        if len(raw) <= DECODED_MAX_BYTES:
            if len(self._decoded) >= DECODED_MAX:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[key] = (raw, entry)
        return entry

    def purge(self, key: str, *, prefix: bool = False) -> int:
        """SCAN + DEL with the shared synchronous client (purges come from sync views and commands)."""
        pattern = glob_escape(self.key_prefix) + "*:" + glob_escape(key) + ("*" if prefix else "")
        client = redis_clients.client(self.url, timeout=max(self.timeout, 5.0), decode_responses=False)
        deleted, batch = 0, []
        for raw in client.scan_iter(match=pattern, count=settings.REDIS_SCAN_COUNT):
            name = raw.decode() if isinstance(raw, bytes) else raw
            if self._matches(name, key, prefix):
                batch.append(name)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
        return deleted

    def _matches(self, name: str, key: str, prefix: bool) -> bool:
        # the glob's `*` may span ':'; only "<prefix><project>:<key>" with a ':'-free project counts
        project, sep, rest = name[len(self.key_prefix) :].partition(":")
        if not sep or not project:
            return False
        return rest.startswith(key) if prefix else rest == key

    async def aclose(self) -> None:
        connections = self._loops.pop(asyncio.get_running_loop(), None)
        if connections is not None:
            await connections.aclose()
