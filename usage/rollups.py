"""Usage rollups: events in, hourly counters out (the `usage` dispatch service), retention, and cache hits.

The proxy's hot path does nothing for this: the `usage` dispatch service (`dispatch/backends/usage.py`) reads
the event stream like the other dispatch services, turns each event into a small entry, and hands each batch
to `usage_record`, which adds it to `UsageRollup` rows with one additive upsert. Cache hits publish
no event, so they are sampled from `Token.cache_hit_count` (see `usage_sample_cache_hits`).
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from usage.models import COUNTER_FIELDS, LATENCY_BOUNDS_MS, LATENCY_FIELDS, CacheHitMark, UsageRollup

logger = logging.getLogger("dispatch.usage")

# (hour, project id, token id): one rollup row.
RollupKey = tuple[datetime, str, str]
UPSERT_ROWS = 200  # rows per INSERT statement (SQLite caps the number of parameters)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def latency_field(duration_ms: int) -> str:
    for bound, field in zip(LATENCY_BOUNDS_MS, LATENCY_FIELDS, strict=False):
        if duration_ms <= bound:
            return field
    return LATENCY_FIELDS[-1]


def usage_record(entries: list[dict[str, Any]]) -> int:
    """Add entries (the usage dispatch service's `usage_entry`) to their hourly rows; returns the rows touched."""
    deltas: dict[RollupKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTER_FIELDS, 0))
    for entry in entries:
        delta = deltas[(datetime.fromisoformat(entry["hour"]), entry["project_id"], entry["token_id"])]
        delta["requests"] += 1
        delta["errors"] += 1 if int(entry["status"]) >= 400 else 0
        delta["prompt_tokens"] += int(entry.get("prompt_tokens") or 0)
        delta["completion_tokens"] += int(entry.get("completion_tokens") or 0)
        delta["latency_ms_total"] += int(entry["duration_ms"])
        delta[latency_field(int(entry["duration_ms"]))] += 1
    return _upsert(deltas)


def _upsert(deltas: dict[RollupKey, dict[str, int]]) -> int:
    """INSERT ... ON CONFLICT DO UPDATE SET c = c + excluded.c (PostgreSQL and SQLite alike).

    Rows go in key order, so concurrent batches lock rows in the same order and cannot deadlock.
    """
    table = connection.ops.quote_name(UsageRollup._meta.db_table)
    columns = ("hour", "project_id", "token_id", *COUNTER_FIELDS)
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in COUNTER_FIELDS)
    keys = sorted(deltas)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(keys), UPSERT_ROWS):
            chunk = keys[start : start + UPSERT_ROWS]
            params: list[Any] = []
            for hour, project_id, token_id in chunk:
                params += [connection.ops.adapt_datetimefield_value(hour), project_id, token_id]
                params += [deltas[(hour, project_id, token_id)][c] for c in COUNTER_FIELDS]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT (hour, project_id, token_id) DO UPDATE SET {updates}",
                params,
            )
    return len(keys)


def usage_sample_cache_hits(now: datetime | None = None) -> int:
    """Fold increases of `Token.cache_hit_count` since the last sample into the current hour's rows.

    Each increase is claimed with a compare-and-set on its `CacheHitMark`, so two workers sampling at
    once never count the same hits twice. Returns the number of hits added.
    """
    from tokens.models import Token

    hour = hour_floor(now or timezone.now())
    marks = dict(CacheHitMark.objects.values_list("token_id", "cache_hit_count"))
    deltas: dict[RollupKey, dict[str, int]] = {}
    with transaction.atomic():
        for token_id, project_id, count in Token.objects.filter(cache_hit_count__gt=0).values_list(
            "id", "project_id", "cache_hit_count"
        ):
            seen = marks.get(str(token_id))
            if count > (seen or 0) and _claim(str(token_id), seen, count):
                delta = dict.fromkeys(COUNTER_FIELDS, 0)
                delta["cache_hits"] = count - (seen or 0)
                deltas[(hour, str(project_id), str(token_id))] = delta
        if deltas:
            _upsert(deltas)
    return sum(delta["cache_hits"] for delta in deltas.values())


def _claim(token_id: str, seen: int | None, count: int) -> bool:
    if seen is None:
        try:
            with transaction.atomic():
                CacheHitMark.objects.create(token_id=token_id, cache_hit_count=count)
            return True
        except IntegrityError:
            return False  # another worker sampled this token first
    return CacheHitMark.objects.filter(token_id=token_id, cache_hit_count=seen).update(cache_hit_count=count) == 1


def usage_cleanup(now: datetime | None = None) -> int:
    """Delete rollups older than USAGE_RETENTION_DAYS; returns the number of rows deleted."""
    cutoff = hour_floor(now or timezone.now()) - timedelta(days=settings.USAGE_RETENTION_DAYS)
    deleted, _ = UsageRollup.objects.filter(hour__lt=cutoff).delete()
    if deleted:
        logger.info("usage: deleted %d rollup rows older than %s", deleted, cutoff.isoformat())
    return deleted
