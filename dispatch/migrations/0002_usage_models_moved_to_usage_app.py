"""The usage rollup models moved to the `usage` app: this app forgets them, their tables stay.

`usage.0001_initial` adopts the same tables (`usage_rollups`, `usage_cache_hit_marks`) without touching the
database, so an existing database keeps its rows; only Django's record of which app owns the models changes.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0001_usage_rollups"),
        ("usage", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="UsageRollup"),
                migrations.DeleteModel(name="CacheHitMark"),
            ],
            database_operations=[],
        ),
    ]
