"""The shared invalidation generation: how a change reaches every web process even when a pub/sub message
is lost, or there is no Redis at all (several processes on one database).

Every change that `invalidation.token_changed` / `project_changed` announce bumps a counter after it
commits: the row of `InvalidationGeneration` in the database and, with Redis configured, the key
`GENERATION_KEY` (INCR). The `GenerationWatch` task of every web process reads both at most once per
`CHECK_INTERVAL`, off the request path (the database read goes through the runtime's database thread), and
clears the process's token and project caches when either moved. The bump comes after the commit, so a
process that sees the new generation also reads the changed rows.

Each successful read marks the caches as confirmed (`Freshness.confirm`); while the generation cannot be
read (database or Redis down), cached entries are trusted for one second only.
"""

import asyncio
import logging
import time

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F

from llmproxy import redis as redis_clients
from llmproxy.lifecycle import acancel

from .auth import Freshness, ProjectKeyCache, TokenCache
from .db import DbThread

logger = logging.getLogger(__name__)
CHANNEL = "llm-proxy:invalidate"  # pub/sub channel of the changes themselves (invalidation.py listens)
GENERATION_KEY = "llm-proxy:invalidate:generation"
CHECK_INTERVAL = 0.5  # seconds between two reads of the generation, at most one read per interval
ROW_ID = 1

Seen = tuple[int, int | None]  # (database generation, Redis generation or None without Redis)


def bump_database() -> None:
    """Add one to the database generation (in the caller's thread, after the change committed)."""
    from .models import InvalidationGeneration

    rows = InvalidationGeneration.objects.filter(id=ROW_ID)
    if rows.update(value=F("value") + 1):
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent first bump wins, then ours updates
            InvalidationGeneration.objects.create(id=ROW_ID, value=1)
    except IntegrityError:
        rows.update(value=F("value") + 1)


def read_database() -> int:
    """The database generation (0 before the first change; the row may also be gone after a flush)."""
    from .models import InvalidationGeneration

    value: int | None = InvalidationGeneration.objects.filter(id=ROW_ID).values_list("value", flat=True).first()
    return value or 0


def announce(message: bytes) -> None:
    """Bump the database generation and, with Redis, its key, and publish `message` (pub/sub's fast path)."""
    try:
        bump_database()
    except DatabaseError:
        logger.exception("invalidation generation not bumped in the database")
    if not settings.REDIS_CONFIGURED:
        return
    try:
        pipe = redis_clients.client(settings.REDIS_URL, timeout=1.0, decode_responses=False).pipeline(transaction=False)
        pipe.incr(GENERATION_KEY)
        pipe.publish(CHANNEL, message)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("cache invalidation not published (other web processes catch up within 1 s): %s", exc)


class GenerationWatch:
    """A background task that clears the caches when the shared generation moves."""

    def __init__(self, db: DbThread, tokens: TokenCache, projects: ProjectKeyCache, freshness: Freshness) -> None:
        self._db = db
        self._tokens = tokens
        self._projects = projects
        self._freshness = freshness
        self._seen: Seen | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def astart(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def astop(self) -> None:
        task, self._task = self._task, None
        await acancel(task)

    async def acheck(self, client: aioredis.Redis | None) -> None:
        """Read the generation once: clear the caches when it moved, and confirm them when it was read."""
        started = time.monotonic()
        database = await self._db.arun(read_database)
        shared = None
        if client is not None:
            shared = int(await client.get(GENERATION_KEY) or 0)
        seen = (database, shared)
        if seen != self._seen:  # the first read clears too: entries cached before it were never confirmed
            self._tokens.clear()
            self._projects.clear()
            self._seen = seen
        self._freshness.confirm(started)

    async def _run(self) -> None:
        client: aioredis.Redis | None = None
        try:
            while True:
                if settings.REDIS_CONFIGURED and client is None:
                    client = aioredis.Redis(connection_pool=redis_clients.async_pool(timeout=1.0))
                started = time.monotonic()
                await self._acheck_logged(client if settings.REDIS_CONFIGURED else None)
                await asyncio.sleep(max(0.0, CHECK_INTERVAL - (time.monotonic() - started)))
        finally:
            if client is not None:
                await client.aclose(close_connection_pool=True)

    async def _acheck_logged(self, client: aioredis.Redis | None) -> None:
        try:
            await self.acheck(client)
        except (DatabaseError, redis.RedisError, OSError) as exc:
            if not self._failing:
                logger.warning("cannot read the invalidation generation (cached tokens live 1 s meanwhile): %s", exc)
            self._failing = True
            return
        if self._failing:
            logger.warning("invalidation generation readable again")
        self._failing = False
