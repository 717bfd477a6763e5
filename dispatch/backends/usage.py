"""The `usage` service: hourly usage rollups in the database, for the admin's usage dashboard (contract 9).

Every event counts (any method, any status), so the payload is the small `usage_entry`, not the
reference's EventPayload. Between batches it also samples cache hits and applies the retention.
"""

import time

from django.db import DatabaseError

from dispatch import usage
from dispatch.backends.base import Backend, DeliveryError

CACHE_HIT_SAMPLE_INTERVAL = 30.0  # seconds between cache-hit samples of one backend instance
CLEANUP_INTERVAL = 3600.0


class UsageBackend(Backend):
    name = "usage"

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        super().__init__(endpoint="database")
        self._next_sample = 0.0
        self._next_cleanup = 0.0

    def payload(self, event, received_at=None) -> dict:
        return usage.usage_entry(event, received_at)

    def send(self, payloads: list[dict]) -> None:
        try:
            usage.usage_record(payloads)
            self.housekeeping()
        except DatabaseError as exc:  # transient: the batch is retried, then dead-lettered
            raise DeliveryError(f"usage: database error: {exc}") from exc

    def housekeeping(self) -> None:
        """Sample cache hits and apply the retention, each at most once per interval."""
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + CACHE_HIT_SAMPLE_INTERVAL
            usage.usage_sample_cache_hits()
        if now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_INTERVAL
            usage.usage_cleanup()

    def describe(self) -> str:
        return "database (hourly usage rollups)"
