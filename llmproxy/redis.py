"""Every Redis client the project builds: one factory, one set of timeouts.

Four kinds, chosen by what the caller may wait for:

- `client(url, timeout=...)`: a shared synchronous client per URL and options, for commands that answer at
  once (figures on a page or a scrape pass a short `timeout`: Redis may be down or hang; management commands
  keep `COMMAND_TIMEOUT`).
- `blocking_client(url, block_seconds=...)`: a new synchronous client for blocking reads (`XREADGROUP ...
  BLOCK`); its read timeout is the block time plus `BLOCK_MARGIN`, so a read that waits its full block time
  never hits the socket timeout.
- `async_pool(url, timeout=...)`: a new `redis.asyncio` connection pool (an asyncio connection belongs to
  one event loop, so the caller keeps one per loop).
- `ping(url, timeout=...)`: whether Redis answers, for readiness checks.

Retries are off everywhere (redis-py's own would turn one timeout into several, and every caller here has
its own retry or simply reports Redis as down). The connect timeout is `CONNECT_TIMEOUT`, never longer than
the command timeout. Clients are not closed by callers: a process keeps them until it exits.
"""

import threading

import redis
import redis.asyncio as aredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT = 5.0  # seconds to open a connection, at most (and never more than the command timeout)
COMMAND_TIMEOUT = 10.0  # seconds for one command when the caller gives no shorter bound
BLOCK_MARGIN = 10.0  # seconds a blocking read's socket timeout exceeds its BLOCK time

__all__ = ["BLOCK_MARGIN", "COMMAND_TIMEOUT", "CONNECT_TIMEOUT", "async_pool", "blocking_client", "client", "ping"]


class _SharedClients:
    """The process's shared synchronous clients, one per (URL, timeout, decode_responses)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, float, bool], redis.Redis] = {}
        self._lock = threading.Lock()

    def get(self, url: str, timeout: float, decode_responses: bool) -> redis.Redis:
        key = (url, timeout, decode_responses)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._clients[key] = _new_client(url, timeout, decode_responses)
            return found


_shared = _SharedClients()


def client(url: str | None = None, *, timeout: float = COMMAND_TIMEOUT, decode_responses: bool = True) -> redis.Redis:
    """The shared client for `url` (REDIS_URL by default) whose commands wait at most `timeout` seconds."""
    return _shared.get(url or settings.REDIS_URL, timeout, decode_responses)


def blocking_client(url: str | None = None, *, block_seconds: float, decode_responses: bool = True) -> redis.Redis:
    """A new client for blocking reads of up to `block_seconds` (its own pool: the caller keeps it)."""
    return _new_client(url or settings.REDIS_URL, block_seconds + BLOCK_MARGIN, decode_responses)


def async_pool(
    url: str | None = None, *, timeout: float = COMMAND_TIMEOUT, connect_timeout: float | None = None
) -> aredis.ConnectionPool:
    """A new asyncio pool (bytes, not decoded) whose commands wait at most `timeout` seconds.

    `connect_timeout` lets a publisher that must notice a down Redis quickly connect with a shorter bound.
    """
    return aredis.ConnectionPool.from_url(
        url or settings.REDIS_URL,
        socket_connect_timeout=_connect_timeout(timeout) if connect_timeout is None else connect_timeout,
        socket_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
    )


def ping(url: str | None = None, *, timeout: float) -> bool:
    """True when Redis answers PING within `timeout` seconds."""
    try:
        return bool(client(url, timeout=timeout, decode_responses=False).ping())
    except (redis.RedisError, OSError):
        return False


def _new_client(url: str, timeout: float, decode_responses: bool) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_connect_timeout=_connect_timeout(timeout),
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _connect_timeout(timeout: float) -> float:
    return min(timeout, CONNECT_TIMEOUT)
