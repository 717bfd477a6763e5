"""Per-token counters written off the request path, in batches (as the reference's usage-stats buffer does).

`UsageBatcher.record_request` counts requests of unlimited tokens (`request_count`, `last_used_at`);
`record_cache_hit` counts cache hits (`cache_hit_count`). Both are plain dict updates on the event loop; a
background task writes the totals every USAGE_STATS_FLUSH_INTERVAL, or sooner after 100 events, and at
shutdown. Limited tokens are not counted here: their guarded UPDATE is on the request path (auth.py).
"""

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F

from llmproxy.lifecycle import acancel

from .db import DbThread

logger = logging.getLogger(__name__)
FLUSH_EVENTS = 100

# token id -> [requests, cache hits, last request time (epoch seconds)]
Pending = dict[str, list[Any]]


class UsageBatcher:
    """Counts per token in memory and writes them in batches from a background task."""

    def __init__(self, db: DbThread) -> None:
        self._db = db
        self._pending: Pending = {}
        self._events = 0
        self._dropped = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def record_request(self, token_id: str) -> None:
        self._record(token_id, 1, 0)

    def record_cache_hit(self, token_id: str) -> None:
        """Count a cache hit of this token (used by the HTTP cache; never blocks)."""
        self._record(token_id, 0, 1)

    def _record(self, token_id: str, requests: int, hits: int) -> None:
        entry = self._pending.get(token_id)
        if entry is None:
            if len(self._pending) >= settings.USAGE_STATS_BUFFER_SIZE:
                self._dropped += 1  # the reference drops too when its buffer is full
                return
            entry = self._pending[token_id] = [0, 0, 0.0]
        entry[0] += requests
        entry[1] += hits
        if requests:
            entry[2] = time.time()
        self._events += 1
        if self._events >= FLUSH_EVENTS and self._wakeup is not None:
            self._wakeup.set()

    async def aflush(self) -> None:
        """Write what is pending now. On a database error the counts stay pending for the next try."""
        if not self._pending:
            return
        batch, self._pending, self._events = self._pending, {}, 0
        try:
            await self._db.arun(_write, batch)
        except DatabaseError:
            logger.warning("could not write %d token usage counters; will retry", len(batch), exc_info=True)
            for token_id, (requests, hits, last) in batch.items():
                entry = self._pending.setdefault(token_id, [0, 0, 0.0])
                entry[0] += requests
                entry[1] += hits
                entry[2] = max(entry[2], last)

    async def astart(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._wakeup))

    async def astop(self) -> None:
        task, self._task = self._task, None
        await acancel(task)
        await self.aflush()

    def stats(self) -> dict[str, int]:
        return {"usage_pending_tokens": len(self._pending), "usage_dropped": self._dropped}

    async def _run(self, wakeup: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(wakeup.wait(), settings.USAGE_STATS_FLUSH_INTERVAL)
            except TimeoutError:
                pass
            wakeup.clear()
            try:
                await self.aflush()
            except Exception:
                logger.exception("token usage flush failed")


def _write(batch: Pending) -> None:
    from tokens.models import Token

    with transaction.atomic():
        for token_id, (requests, hits, last) in sorted(batch.items()):  # sorted: same lock order everywhere
            updates: dict[str, Any] = {}
            if requests:
                updates["request_count"] = F("request_count") + requests
                updates["last_used_at"] = datetime.fromtimestamp(last, UTC)
            if hits:
                updates["cache_hit_count"] = F("cache_hit_count") + hits
            Token.objects.filter(id=token_id).update(**updates)
