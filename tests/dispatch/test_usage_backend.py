"""The `usage` dispatch service: events become hourly rollups per project and token, read by the report."""

import io
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, close_old_connections, connection

from dispatch.backends import create_backend
from tests.dispatch.factories import chat_event, stream_event
from tokens.models import Token
from usage.models import UsageRollup
from usage.report import percentile, usage_report
from usage.rollups import usage_cleanup, usage_record, usage_sample_cache_hits

# Within the retention (the backend applies it when it sends), in the middle of an hour.
RECEIVED = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=1)


def tagged(event, project_id="", token_id=""):
    """The event as the proxy publishes it for a request whose token it validated."""
    if project_id:
        event.response_headers["X-Proxy-Project-Id"] = [project_id]
    if token_id:
        event.response_headers["X-Proxy-Token-Id"] = [token_id]
    return event


def deliver(events, received_at=RECEIVED):
    backend = create_backend("usage")
    backend.send([backend.payload(event, received_at) for event in events])
    return backend


def only_row(**filters) -> UsageRollup:
    return UsageRollup.objects.get(**filters)


@pytest.mark.django_db
def test_usage_is_a_registered_dispatch_service_writing_to_the_database():
    backend = create_backend("usage")
    assert backend.name == "usage"
    assert "database" in backend.describe()


@pytest.mark.django_db
def test_events_of_one_hour_add_up_in_one_row_per_token(token_pair):
    token, _ = token_pair
    pid, tid = str(token.project_id), str(token.id)
    deliver(
        [tagged(chat_event(), pid, tid), tagged(stream_event(), pid, tid), tagged(chat_event(status=502), pid, tid)]
    )
    row = only_row(project_id=pid, token_id=tid)
    assert row.hour == RECEIVED.replace(minute=0)
    assert (row.requests, row.errors) == (3, 1)
    # usage of the JSON answers (9 + 3 each) and of the stream's final chunk (9 + 3 words)
    assert (row.prompt_tokens, row.completion_tokens) == (27, 9)
    assert row.latency_ms_total == 1234 + 950 + 1234
    assert (row.latency_le_1000, row.latency_le_2500) == (1, 2)


@pytest.mark.django_db
def test_events_without_project_or_token_are_kept_unattributed():
    deliver([chat_event(status=401, method="GET", path="/v1/models", request_body=None)])
    row = only_row(project_id="", token_id="")
    assert (row.requests, row.errors, row.prompt_tokens) == (1, 1, 0)


@pytest.mark.django_db
def test_the_reference_x_proxy_id_header_names_the_project(project):
    event = chat_event()
    event.response_headers["X-Proxy-Id"] = [str(project.id)]
    deliver([event])
    assert only_row(project_id=str(project.id)).requests == 1


@pytest.mark.django_db
def test_a_redelivered_batch_is_counted_again_at_least_once_semantics(token_pair):
    """Rollups are counters: the drain loop acknowledges only after `send`, so a crash between the two
    counts that batch twice. This is the documented at-least-once trade-off."""
    token, _ = token_pair
    events = [tagged(chat_event(), str(token.project_id), str(token.id))]
    deliver(events)
    deliver(events)
    assert only_row(token_id=str(token.id)).requests == 2


def record_with_retries(entries, attempts=200):
    """As the drain loop does with a transient failure: the batch's transaction rolled back, so send it again.
    (SQLite's shared in-memory test database answers "table is locked" instead of waiting.)"""
    for _ in range(attempts - 1):
        try:
            return usage_record(entries)
        except OperationalError:
            time.sleep(0.005)  # a pause before the retry, as the drain loop makes, not a wait for readiness
    return usage_record(entries)


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_lose_increments(token_pair):
    token, _ = token_pair
    entry = {
        "hour": RECEIVED.replace(minute=0).isoformat(),
        "project_id": str(token.project_id),
        "token_id": str(token.id),
        "status": 200,
        "duration_ms": 40,
        "prompt_tokens": 2,
        "completion_tokens": 1,
    }
    errors = []

    def worker():
        try:
            for _ in range(10):
                record_with_retries([entry] * 5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    row = only_row(token_id=str(token.id))
    assert (row.requests, row.prompt_tokens, row.latency_le_50) == (200, 400, 200)


@pytest.mark.django_db
def test_cache_hits_are_sampled_from_token_counters_once(token_pair):
    token, _ = token_pair
    Token.objects.filter(id=token.id).update(cache_hit_count=5)
    now = datetime.now(UTC)
    assert usage_sample_cache_hits(now) == 5
    assert usage_sample_cache_hits(now) == 0
    Token.objects.filter(id=token.id).update(cache_hit_count=7)
    assert usage_sample_cache_hits(now) == 2
    row = only_row(token_id=str(token.id))
    assert (row.cache_hits, row.requests, row.project_id) == (7, 0, str(token.project_id))


@pytest.mark.django_db
def test_rollups_older_than_the_retention_are_deleted(settings):
    settings.USAGE_RETENTION_DAYS = 7
    now = datetime(2026, 3, 20, 12, 15, tzinfo=UTC)
    for age in (timedelta(days=8), timedelta(days=7, hours=1), timedelta(days=6)):
        UsageRollup.objects.create(hour=(now - age).replace(minute=0), requests=1)
    assert usage_cleanup(now) == 2
    assert list(UsageRollup.objects.values_list("requests", flat=True)) == [1]


@pytest.mark.django_db
def test_the_report_reads_p50_and_p95_from_the_histogram_and_fills_empty_hours(token_pair):
    token, _ = token_pair
    pid, tid = str(token.project_id), str(token.id)
    now = datetime.now(UTC)
    fast = [tagged(chat_event(duration_ns=30_000_000), pid, tid) for _ in range(19)]
    deliver(fast + [tagged(chat_event(duration_ns=3_000_000_000), pid, tid)], received_at=now)
    report = usage_report("24h", now=now)
    assert report["totals"]["requests"] == 20
    assert 25 < report["totals"]["latency_p50_ms"] <= 50
    assert 25 < report["totals"]["latency_p95_ms"] <= 50  # 19 of 20 are fast: p95 is the 19th
    assert [row["project_name"] for row in report["projects"]] == ["Acme"]
    assert report["tokens"][0]["token_label"] == token.obfuscated
    assert len(report["series"]["labels"]) == 24 and report["series"]["requests"][-1] == 20
    assert sum(report["series"]["requests"]) == 20
    month = usage_report("30d", now=now)
    assert month["totals"]["requests"] == 20 and sum(month["series"]["requests"]) == 20
    assert 30 <= len(month["series"]["labels"]) <= 31


def test_percentile_interpolates_inside_a_bucket_and_is_none_without_data():
    assert percentile([0] * 14, 0.5) is None
    buckets = [0] * 14
    buckets[1] = 10  # all in (10, 25] ms
    assert percentile(buckets, 0.5) == 17.5
    buckets = [0] * 13 + [4]  # all slower than the last bound
    assert percentile(buckets, 0.95) == 120000.0


@pytest.mark.django_db
def test_the_maintenance_command_samples_cache_hits_and_applies_the_retention(token_pair, settings):
    token, _ = token_pair
    settings.USAGE_RETENTION_DAYS = 1
    UsageRollup.objects.create(hour=datetime.now(UTC).replace(minute=0) - timedelta(days=3), requests=4)
    Token.objects.filter(id=token.id).update(cache_hit_count=3)
    out = io.StringIO()
    call_command("usage_maintenance", stdout=out)
    assert "cache hits added: 3" in out.getvalue() and "deleted (older than 1 days): 1" in out.getvalue()
    assert list(UsageRollup.objects.values_list("cache_hits", "requests")) == [(3, 0)]
