"""Hourly usage rollups, kept by the `usage` dispatch service (`dispatch/backends/usage.py`) from the event stream.

One row per (hour, project, token). Counters only grow, by one additive upsert per batch
(`usage.rollups.usage_record`), so concurrent workers never lose each other's increments.
Latency is a fixed-bucket histogram (one column per bucket, so it merges by addition too):
p50/p95 over any set of rows are read from the summed buckets.
"""

from django.db import models

# Upper bounds (milliseconds) of the latency buckets; a last bucket holds everything slower.
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)
LATENCY_FIELDS = tuple(f"latency_le_{bound}" for bound in LATENCY_BOUNDS_MS) + ("latency_gt_120000",)
COUNTER_FIELDS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_hits",
    "latency_ms_total",
    *LATENCY_FIELDS,
)


class UsageRollup(models.Model):
    """Usage of one token (of one project) during one UTC hour. Empty ids: traffic with no known project/token."""

    hour = models.DateTimeField(db_index=True)
    project_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    token_id = models.CharField(max_length=64, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0, help_text="Responses with status 400 or above.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    latency_ms_total = models.BigIntegerField(default=0)
    latency_le_10 = models.BigIntegerField(default=0)
    latency_le_25 = models.BigIntegerField(default=0)
    latency_le_50 = models.BigIntegerField(default=0)
    latency_le_100 = models.BigIntegerField(default=0)
    latency_le_250 = models.BigIntegerField(default=0)
    latency_le_500 = models.BigIntegerField(default=0)
    latency_le_1000 = models.BigIntegerField(default=0)
    latency_le_2500 = models.BigIntegerField(default=0)
    latency_le_5000 = models.BigIntegerField(default=0)
    latency_le_10000 = models.BigIntegerField(default=0)
    latency_le_30000 = models.BigIntegerField(default=0)
    latency_le_60000 = models.BigIntegerField(default=0)
    latency_le_120000 = models.BigIntegerField(default=0)
    latency_gt_120000 = models.BigIntegerField(default=0)

    class Meta:
        # The table keeps the name it had when this model lived in the `dispatch` app (see migrations).
        db_table = "usage_rollups"
        ordering = ["-hour"]
        verbose_name = "usage"
        verbose_name_plural = "usage"
        constraints = [
            models.UniqueConstraint(fields=["hour", "project_id", "token_id"], name="usage_rollup_hour_project_token")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 project={self.project_id or '-'} token={self.token_id or '-'}"


class CacheHitMark(models.Model):
    """The last `Token.cache_hit_count` folded into the rollups: cache hits publish no event, so the
    usage service samples the token counters and adds each increase to the current hour."""

    token_id = models.CharField(max_length=64, primary_key=True)
    cache_hit_count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "usage_cache_hit_marks"  # as when the model lived in `dispatch`

    def __str__(self) -> str:
        return f"{self.token_id}: {self.cache_hit_count}"
