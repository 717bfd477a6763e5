"""The shared invalidation generation: one counter row that every web process polls (see generation.py)."""

from django.db import models


class InvalidationGeneration(models.Model):
    """Bumped after every change the proxy's caches must not outlive (token revoked, project deactivated)."""

    id = models.PositiveSmallIntegerField(primary_key=True)  # always 1: one row
    value = models.BigIntegerField(default=0)

    class Meta:
        db_table = "proxy_invalidation_generation"

    def __str__(self) -> str:
        return f"invalidation generation {self.value}"
