"""Per-token counters written off the request path, in batches (reference §3.7).

`record_request` counts requests of unlimited tokens (`request_count`, `last_used_at`); `record_cache_hit`
counts cache hits (`cache_hit_count`). Both are plain dict updates on the event loop; a background task
writes the totals every USAGE_STATS_FLUSH_INTERVAL, or sooner after 100 events, and at shutdown.
Limited tokens are not counted here: their guarded UPDATE is on the request path (llmproxy/proxy/auth.py).
"""

import asyncio
import logging
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F

from llmproxy import lifecycle

from . import state

logger = logging.getLogger(__name__)
FLUSH_EVENTS = 100

# token id -> [requests, cache hits, last request time (epoch seconds)]
_pending: dict[str, list] = {}
_events = 0
_dropped = 0
_wakeup: asyncio.Event | None = None
_task: asyncio.Task | None = None


def record_request(token_id: str) -> None:
    _record(token_id, 1, 0)


def record_cache_hit(token_id: str) -> None:
    """Count a cache hit of this token (used by the HTTP cache; never blocks)."""
    _record(token_id, 0, 1)


def _record(token_id: str, requests: int, hits: int) -> None:
    global _events, _dropped
    entry = _pending.get(token_id)
    if entry is None:
        if len(_pending) >= settings.USAGE_STATS_BUFFER_SIZE:
            _dropped += 1  # the reference drops too when its buffer is full
            return
        entry = _pending[token_id] = [0, 0, 0.0]
    entry[0] += requests
    entry[1] += hits
    if requests:
        entry[2] = time.time()
    _events += 1
    if _events >= FLUSH_EVENTS and _wakeup is not None:
        _wakeup.set()


async def aflush() -> None:
    """Write what is pending now. On a database error the counts stay pending for the next try."""
    global _pending, _events
    if not _pending:
        return
    batch, _pending, _events = _pending, {}, 0
    try:
        await sync_to_async(_write)(batch)
    except DatabaseError:
        logger.warning("could not write %d token usage counters; will retry", len(batch), exc_info=True)
        for token_id, (requests, hits, last) in batch.items():
            entry = _pending.setdefault(token_id, [0, 0, 0.0])
            entry[0] += requests
            entry[1] += hits
            entry[2] = max(entry[2], last)


def _write(batch: dict[str, list]) -> None:
    from tokens.models import Token

    from .auth import db_hygiene

    db_hygiene()
    with transaction.atomic():
        for token_id, (requests, hits, last) in sorted(batch.items()):  # sorted: same lock order everywhere
            updates = {}
            if requests:
                updates["request_count"] = F("request_count") + requests
                updates["last_used_at"] = datetime.fromtimestamp(last, UTC)
            if hits:
                updates["cache_hit_count"] = F("cache_hit_count") + hits
            Token.objects.filter(id=token_id).update(**updates)


async def _run() -> None:
    while True:
        try:
            await asyncio.wait_for(_wakeup.wait(), settings.USAGE_STATS_FLUSH_INTERVAL)
        except TimeoutError:
            pass
        _wakeup.clear()
        try:
            await aflush()
        except Exception:
            logger.exception("token usage flush failed")


async def astart() -> None:
    global _wakeup, _task
    _wakeup = asyncio.Event()
    _task = asyncio.get_running_loop().create_task(_run())


async def astop() -> None:
    global _task
    task, _task = _task, None
    await lifecycle.acancel(task)
    await aflush()


def register() -> None:
    lifecycle.on_startup(astart)
    lifecycle.on_shutdown(astop)


def stats() -> dict:
    return {"usage_pending_tokens": len(_pending), "usage_dropped": _dropped}


@state.on_reset
def _reset() -> None:
    global _pending, _events, _dropped
    _pending, _events, _dropped = {}, 0, 0
