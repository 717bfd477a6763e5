"""A database created when the usage rollups lived in the `dispatch` app upgrades with its rows and grants."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from usage.models import UsageRollup

pytestmark = pytest.mark.django_db(transaction=True)


def migrate_to_the_old_layout() -> None:
    # Unapplying `usage` also unapplies `dispatch.0002` (it depends on `usage.0001`): what is left is the
    # schema and migration history of a database from before the move, with the tables in place.
    call_command("migrate", "usage", "zero", verbosity=0)
    call_command("migrate", "dispatch", "0001_usage_rollups", verbosity=0)
    ContentType.objects.clear_cache()


def insert_rollup_with_sql(requests: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_rollups (hour, project_id, token_id, requests, errors, prompt_tokens,"
            " completion_tokens, cache_hits, latency_ms_total, latency_le_10, latency_le_25, latency_le_50,"
            " latency_le_100, latency_le_250, latency_le_500, latency_le_1000, latency_le_2500, latency_le_5000,"
            " latency_le_10000, latency_le_30000, latency_le_60000, latency_le_120000, latency_gt_120000)"
            " VALUES (%s, 'p1', 't1', %s, 0, 7, 5, 0, 120, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
            [connection.ops.adapt_datetimefield_value(_hour()), requests],
        )


def _hour() -> datetime:
    return datetime(2026, 11, 27, 3, tzinfo=UTC)


def test_rollup_rows_written_before_the_move_are_read_by_the_usage_app_after_migrate():
    migrate_to_the_old_layout()
    insert_rollup_with_sql(requests=4)

    call_command("migrate", verbosity=0)

    row = UsageRollup.objects.get()
    assert (row.hour, row.project_id, row.token_id, row.requests, row.prompt_tokens) == (_hour(), "p1", "t1", 4, 7)


def test_a_group_granted_the_dashboard_under_dispatch_keeps_it_under_usage():
    migrate_to_the_old_layout()
    old = ContentType.objects.get(app_label="dispatch", model="usagerollup")  # as an old database has it
    viewers = Group.objects.create(name="usage viewers")
    viewers.permissions.add(Permission.objects.get(content_type=old, codename="view_usagerollup"))

    call_command("migrate", verbosity=0)

    assert not ContentType.objects.filter(app_label="dispatch").exists()
    assert [f"{p.content_type.app_label}.{p.codename}" for p in viewers.permissions.all()] == ["usage.view_usagerollup"]
    assert Permission.objects.filter(codename="view_usagerollup").count() == 1
