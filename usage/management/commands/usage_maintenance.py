"""`manage.py usage_maintenance`: fold new cache hits into the usage rollups and apply USAGE_RETENTION_DAYS.

The `usage` dispatch service does both while events flow; run this from cron (or by hand) when traffic is
so sparse that hours pass without an event, or after lowering the retention.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from usage.rollups import usage_cleanup, usage_sample_cache_hits


class Command(BaseCommand):
    help = "Sample token cache-hit counters into the hourly usage rollups and delete rollups past the retention."

    def handle(self, *args: Any, **options: Any) -> None:
        hits = usage_sample_cache_hits()
        deleted = usage_cleanup()
        days = settings.USAGE_RETENTION_DAYS
        self.stdout.write(f"cache hits added: {hits}; rollup rows deleted (older than {days} days): {deleted}")
