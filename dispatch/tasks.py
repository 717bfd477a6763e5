"""Celery tasks: beat schedules one `drain_service` per service in DISPATCH_SERVICES every DISPATCH_INTERVAL."""

import redis
from celery import shared_task

from dispatch.runner import CYCLE_SECONDS, run_cycle


@shared_task(
    name="dispatch.tasks.drain_service",
    ignore_result=True,
    # A cycle ends after CYCLE_SECONDS, but a batch in progress may need its retries (4 x 30 s timeouts + 7 s).
    soft_time_limit=int(CYCLE_SECONDS) + 150,
    time_limit=int(CYCLE_SECONDS) + 180,
    autoretry_for=(redis.ConnectionError,),
    retry_backoff=True,
    max_retries=3,
)
def drain_service(service: str) -> int:
    """Drain `service`'s consumer group for one bounded cycle (a no-op while another worker drains it)."""
    return run_cycle(service)


@shared_task(name="dispatch.tasks.usage_maintenance", ignore_result=True, soft_time_limit=60, time_limit=90)
def usage_maintenance() -> None:
    """Fold new cache hits into the usage rollups and apply USAGE_RETENTION_DAYS, even when no event flows."""
    from usage.rollups import usage_cleanup, usage_sample_cache_hits

    usage_sample_cache_hits()
    usage_cleanup()
