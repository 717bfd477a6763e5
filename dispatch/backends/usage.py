"""The `usage` service: hourly usage rollups in the database, for the admin's usage dashboard (the `usage` app).

Every event counts (any method, any status), so the payload is the small `usage_entry`, not the
reference's EventPayload. Between batches it also samples cache hits and applies the retention.
"""

import logging
import threading
import time
from datetime import datetime
from typing import Any

from django.db import DatabaseError

from dispatch.backends.base import Backend, DeliveryError
from dispatch.transform import event_times, response_output
from instrumentation.events import Event
from instrumentation.jsonsafe import clean_text
from instrumentation.sse import tokens_usage
from usage import rollups
from usage.rollups import hour_floor

CACHE_HIT_SAMPLE_INTERVAL = 30.0  # seconds between cache-hit samples of one process
CLEANUP_INTERVAL = 3600.0
logger = logging.getLogger("dispatch.usage")
# Response headers of an event that name its project and token (set by the proxy; first match wins).
PROJECT_HEADERS = ("X-Proxy-Project-Id", "X-Proxy-Id")
TOKEN_HEADERS = ("X-Proxy-Token-Id",)


class UsageBackend(Backend):
    name = "usage"

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        super().__init__(endpoint="database")

    def payload(self, event: Event, received_at: datetime | None = None) -> dict[str, Any]:
        return usage_entry(event, received_at)

    def send(self, payloads: list[dict[str, Any]]) -> None:
        try:
            rollups.usage_record(payloads)
        except DatabaseError as exc:  # transient: the batch is retried, then dead-lettered
            raise DeliveryError(f"usage: database error: {exc}") from exc
        self.housekeeping()

    def housekeeping(self) -> None:
        """Sample cache hits and apply the retention, each at most once per interval in this process.

        Never raises: the batch is already counted, and a failure here must not make it count twice.
        """
        try:
            if _take("sample", CACHE_HIT_SAMPLE_INTERVAL):
                rollups.usage_sample_cache_hits()
            if _take("cleanup", CLEANUP_INTERVAL):
                rollups.usage_cleanup()
        except DatabaseError:
            logger.warning("usage: cache-hit sampling or retention failed; retried later", exc_info=True)

    def describe(self) -> str:
        return "database (hourly usage rollups)"


class Schedule:
    """When each housekeeping job is next due. Per process, not per backend: Celery builds a backend for
    every drain cycle (one per DISPATCH_INTERVAL)."""

    def __init__(self) -> None:
        self._due = {"sample": 0.0, "cleanup": 0.0}
        self._lock = threading.Lock()

    def take(self, job: str, interval: float) -> bool:
        """True (and the job's next time set) when `job` is due."""
        now = time.monotonic()
        with self._lock:
            if now < self._due[job]:
                return False
            self._due[job] = now + interval
            return True


_schedule = Schedule()


def _take(job: str, interval: float) -> bool:
    return _schedule.take(job, interval)


def usage_entry(event: Event, received_at: datetime | None = None) -> dict[str, Any]:
    """The part of an event the rollups need, as JSON-safe values."""
    usage = (tokens_usage(response_output(event)) if event.method.upper() == "POST" else None) or {}
    return {
        "hour": hour_floor(event_times(event, received_at)[1]).isoformat(),
        "project_id": _first_header(event, PROJECT_HEADERS),
        "token_id": _first_header(event, TOKEN_HEADERS),
        "status": event.status,
        "duration_ms": max(0, event.duration_ns // 1_000_000),
        "prompt_tokens": usage.get("prompt", 0),
        "completion_tokens": usage.get("completion", 0),
    }


def _first_header(event: Event, names: tuple[str, ...]) -> str:
    for name in names:
        value = event.header(name).strip()
        if value:
            # A lone surrogate has no UTF-8 form and PostgreSQL refuses NUL: either would fail the whole batch.
            return clean_text(value[:64]).replace("\x00", "")
    return ""
