"""The `usage` service: hourly usage rollups in the database, for the admin's usage dashboard (contract 9).

Every event counts (any method, any status), so the payload is the small `usage_entry`, not the
reference's EventPayload. Between batches it also samples cache hits and applies the retention.
"""

import logging
import threading
import time

from django.db import DatabaseError

from dispatch import usage
from dispatch.backends.base import Backend, DeliveryError

CACHE_HIT_SAMPLE_INTERVAL = 30.0  # seconds between cache-hit samples of one process
CLEANUP_INTERVAL = 3600.0
# Per process, not per backend: Celery builds a backend for every drain cycle (one per DISPATCH_INTERVAL).
_due = {"sample": 0.0, "cleanup": 0.0}
_due_lock = threading.Lock()
logger = logging.getLogger("dispatch.usage")


class UsageBackend(Backend):
    name = "usage"

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        super().__init__(endpoint="database")

    def payload(self, event, received_at=None) -> dict:
        return usage.usage_entry(event, received_at)

    def send(self, payloads: list[dict]) -> None:
        try:
            usage.usage_record(payloads)
        except DatabaseError as exc:  # transient: the batch is retried, then dead-lettered
            raise DeliveryError(f"usage: database error: {exc}") from exc
        self.housekeeping()

    def housekeeping(self) -> None:
        """Sample cache hits and apply the retention, each at most once per interval in this process.

        Never raises: the batch is already counted, and a failure here must not make it count twice.
        """
        try:
            if _take("sample", CACHE_HIT_SAMPLE_INTERVAL):
                usage.usage_sample_cache_hits()
            if _take("cleanup", CLEANUP_INTERVAL):
                usage.usage_cleanup()
        except DatabaseError:
            logger.warning("usage: cache-hit sampling or retention failed; retried later", exc_info=True)

    def describe(self) -> str:
        return "database (hourly usage rollups)"


def _take(job: str, interval: float) -> bool:
    now = time.monotonic()
    with _due_lock:
        if now < _due[job]:
            return False
        _due[job] = now + interval
        return True
