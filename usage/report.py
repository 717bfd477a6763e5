"""The usage dashboard's numbers: totals, per project, per token and over time, from the hourly rollups."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from usage.models import COUNTER_FIELDS, LATENCY_BOUNDS_MS, LATENCY_FIELDS, UsageRollup
from usage.rollups import hour_floor

WINDOWS = {"24h": ("Last 24 hours", timedelta(hours=24)), "30d": ("Last 30 days", timedelta(days=30))}
TOP_TOKENS = 50
NO_PROJECT = "(no project)"


@dataclass
class Window:
    key: str
    label: str
    start: datetime  # first hour included
    hours: int

    @property
    def daily(self) -> bool:
        return self.hours > 48


def window_for(key: str, now: datetime | None = None) -> Window:
    key = key if key in WINDOWS else "24h"
    label, span = WINDOWS[key]
    hours = int(span.total_seconds() // 3600)
    return Window(key, label, hour_floor(now or timezone.now()) - timedelta(hours=hours - 1), hours)


def percentile(buckets: list[int], fraction: float) -> float | None:
    """The `fraction` quantile (milliseconds) of a latency histogram, interpolated inside its bucket."""
    total = sum(buckets)
    if not total:
        return None
    rank, below, lower = fraction * total, 0, 0.0
    for count, upper in zip(buckets, (*LATENCY_BOUNDS_MS, None), strict=True):
        if count and below + count >= rank:
            if upper is None:  # the open-ended last bucket: report its lower bound
                return lower
            return round(lower + (upper - lower) * (rank - below) / count, 1)
        below += count
        lower = float(upper) if upper is not None else lower
    return lower


def summarize(row: dict[str, Any]) -> dict[str, Any]:
    """Counters of an aggregated row plus average, p50 and p95 latency."""
    counters = {field: int(row.get(field) or 0) for field in COUNTER_FIELDS}
    buckets = [counters[field] for field in LATENCY_FIELDS]
    requests = counters["requests"]
    return {
        "requests": requests,
        "errors": counters["errors"],
        "prompt_tokens": counters["prompt_tokens"],
        "completion_tokens": counters["completion_tokens"],
        "cache_hits": counters["cache_hits"],
        "latency_avg_ms": round(counters["latency_ms_total"] / requests, 1) if requests else None,
        "latency_p50_ms": percentile(buckets, 0.50),
        "latency_p95_ms": percentile(buckets, 0.95),
    }


def _sums() -> dict[str, Any]:
    return {field: Sum(field) for field in COUNTER_FIELDS}


def usage_report(window_key: str = "24h", *, project_id: str = "", now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows for one window (optionally one project)."""
    window = window_for(window_key, now)
    rows = UsageRollup.objects.filter(hour__gte=window.start)
    if project_id:
        rows = rows.filter(project_id=project_id)
    projects = [
        {"project_id": row["project_id"], **summarize(row)}
        for row in rows.values("project_id").annotate(**_sums()).order_by("-requests", "project_id")
    ]
    tokens = [
        {"project_id": row["project_id"], "token_id": row["token_id"], **summarize(row)}
        for row in rows.values("project_id", "token_id")
        .annotate(**_sums())
        .order_by("-requests", "token_id")[:TOP_TOKENS]
    ]
    _add_names(projects, tokens)
    return {
        "window": window,
        "totals": summarize(rows.aggregate(**_sums())),
        "projects": projects,
        "tokens": tokens,
        "series": _series(rows, window),
    }


def _series(rows: QuerySet[UsageRollup], window: Window) -> dict[str, Any]:
    """Per hour (24 h) or per day (30 days): labels and one list per counter, zeros where nothing happened."""
    if window.daily:
        first = window.start.replace(hour=0)
        last = (window.start + timedelta(hours=window.hours - 1)).replace(hour=0)
        slots = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    else:
        slots = [window.start + timedelta(hours=i) for i in range(window.hours)]
    grouped: dict[datetime, dict[str, Any]] = {slot: dict.fromkeys(COUNTER_FIELDS, 0) for slot in slots}
    for row in rows.values("hour").annotate(**_sums()):
        slot = row["hour"].replace(hour=0) if window.daily else row["hour"]
        if slot in grouped:
            for field in COUNTER_FIELDS:
                grouped[slot][field] += int(row[field] or 0)
    summaries = [summarize(grouped[slot]) for slot in slots]
    label_format = "%m-%d" if window.daily else "%H:00"
    series = {"labels": [slot.strftime(label_format) for slot in slots]}
    for key in (
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cache_hits",
        "latency_p50_ms",
        "latency_p95_ms",
    ):
        series[key] = [summary[key] for summary in summaries]
    return series


def _add_names(projects: list[dict[str, Any]], tokens: list[dict[str, Any]]) -> None:
    from projects.models import Project
    from tokens.models import Token

    project_ids = {row["project_id"] for row in projects + tokens if _is_uuid(row["project_id"])}
    names = {str(pk): name for pk, name in Project.objects.filter(id__in=project_ids).values_list("id", "name")}
    token_ids = {row["token_id"] for row in tokens if _is_uuid(row["token_id"])}
    shown = {str(token.id): token.obfuscated for token in Token.objects.filter(id__in=token_ids)}
    for row in projects + tokens:
        pid = row["project_id"]
        row["project_name"] = names.get(pid, f"deleted project {pid[:8]}") if pid else NO_PROJECT
    for row in tokens:
        tid = row["token_id"]
        row["token_label"] = shown.get(tid, f"deleted token {tid[:8]}") if tid else "(no token)"


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except (ValueError, TypeError):
        return False
