"""/manage/audit and /manage/audit/{id}: filters, pagination, and the event format."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import AuditContext, audit_log
from tests.manage.conftest import assert_json_error

pytestmark = pytest.mark.django_db


def record(action="project.create", outcome="success", minutes_ago=0, **fields):
    ctx = AuditContext(
        actor=fields.pop("actor", "management_api"),
        request_id=fields.pop("request_id", ""),
        correlation_id=fields.pop("correlation_id", ""),
        client_ip=fields.pop("client_ip", ""),
        method=fields.pop("method", ""),
        path=fields.pop("path", ""),
        user_agent=fields.pop("user_agent", ""),
    )
    event = audit_log(action, outcome, ctx, **fields)
    if minutes_ago:
        AuditEvent.objects.filter(id=event.id).update(timestamp=timezone.now() - timedelta(minutes=minutes_ago))
    return event


def listed(api, query=""):
    response = api.get(f"/manage/audit{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_an_empty_log_is_an_empty_array_not_null(api):
    body = listed(api)
    assert body == {
        "events": [],
        "pagination": {
            "page": 1, "page_size": 20, "total_count": 0, "total_pages": 0, "has_next": False, "has_prev": False,
        },
    }  # fmt: skip


def test_events_are_listed_newest_first_with_pagination(api):
    for minutes in (30, 20, 10):
        record(action=f"a.{minutes}", minutes_ago=minutes, actor="tester")
    body = listed(api, "?page=2&page_size=2&actor=tester")
    assert [e["action"] for e in body["events"]] == ["a.30"]
    assert body["pagination"] == {
        "page": 2, "page_size": 2, "total_count": 3, "total_pages": 2, "has_next": False, "has_prev": True,
    }  # fmt: skip
    first = listed(api, "?page=1&page_size=2&actor=tester")
    assert [e["action"] for e in first["events"]] == ["a.10", "a.20"] and first["pagination"]["has_next"] is True


def test_a_page_beyond_the_end_is_empty(api):
    record()
    body = listed(api, "?page=99999999999999999999")
    assert body["events"] == [] and body["pagination"]["total_count"] == 1


def test_page_size_is_capped_at_100(api):
    assert listed(api, "?page_size=1000")["pagination"]["page_size"] == 100


@pytest.mark.parametrize(
    "query,message",
    [
        ("?page_size=0", "invalid page_size"),
        ("?page_size=-1", "invalid page_size"),
        ("?page_size=ten", "invalid page_size"),
        ("?page=0", "invalid page"),
        ("?page=1.5", "invalid page"),
        ("?start_time=yesterday", "invalid start_time"),
        ("?start_time=2026-13-01T00:00:00Z", "invalid start_time"),
        ("?end_time=2026-01-01", "invalid end_time"),
    ],
)
def test_invalid_pagination_and_times_are_400s(api, query, message):
    body = assert_json_error(api.get(f"/manage/audit{query}"), 400, message)
    assert body["description"]


def test_the_listing_is_audited_after_it_is_read(api, audit_trail):
    record()
    body = listed(api)
    assert [e["action"] for e in body["events"]] == ["project.create"]
    rows, lines = audit_trail("audit.list")
    assert {k: rows[0].metadata[k] for k in ("events_count", "page", "page_size", "total_count")} == {
        "events_count": 1, "page": 1, "page_size": 20, "total_count": 1,
    }  # fmt: skip
    assert lines[0]["result"] == "success"


FILTERED = {
    "action": "token.revoke",
    "client_ip": "203.0.113.9",
    "project_id": str(uuid.uuid4()),
    "outcome": "failure",
    "actor": "admin:alice",
    "request_id": "req-filter",
    "correlation_id": "corr-filter",
    "method": "DELETE",
    "path": "/manage/tokens/x",
}


@pytest.mark.parametrize("name", list(FILTERED))
def test_each_filter_matches_exactly(api, name):
    record(**FILTERED)
    record(action="project.list", project_id="", method="GET", path="/manage/projects")
    body = listed(api, f"?{name}={FILTERED[name]}")
    assert [e["action"] for e in body["events"]] == ["token.revoke"]
    assert listed(api, f"?{name}={FILTERED[name]}x")["events"] == []


def test_search_looks_into_the_columns_and_the_metadata(api):
    record(action="project.create", details={"project_name": "Needle Corp"})
    record(action="token.list", client_ip="198.51.100.7")
    assert [e["action"] for e in listed(api, "?search=needle")["events"]] == ["project.create"]
    assert [e["action"] for e in listed(api, "?search=198.51")["events"]] == ["token.list"]
    assert listed(api, "?search=%25")["events"] == []  # LIKE wildcards are literal


def test_time_filters_bound_the_events(api):
    record(action="old", minutes_ago=120)
    record(action="recent", minutes_ago=5)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (timezone.now() - timedelta(minutes=30)).isoformat()
    assert [e["action"] for e in listed(api, f"?start_time={since}")["events"]] == ["recent"]
    assert [e["action"] for e in listed(api, "?end_time=" + until.replace("+", "%2B"))["events"]] == ["old"]


def test_a_nul_character_in_a_filter_matches_nothing(api):
    record()
    assert listed(api, "?action=%00")["events"] == []


def test_an_event_has_the_reference_fields_and_metadata_as_a_json_string(api):
    event = record(
        action="token.read", outcome="failure", request_id="r-1", client_ip="192.0.2.1", method="GET",
        path="/manage/tokens/x", user_agent="curl/8", token_id="tok", details={"error": "token not found"},
    )  # fmt: skip
    shown = api.get(f"/manage/audit/{event.id}").json()
    assert shown["id"] == str(event.id) and shown["timestamp"].endswith("Z")
    assert shown["outcome"] == "failure" and shown["reason"] == "token not found" and shown["token_id"] == "tok"
    assert shown["method"] == "GET" and shown["path"] == "/manage/tokens/x" and shown["user_agent"] == "curl/8"
    assert isinstance(shown["metadata"], str) and json.loads(shown["metadata"])["error"] == "token not found"
    assert "project_id" not in shown and "correlation_id" not in shown  # empty optional fields are left out
    assert listed(api, "?action=token.read")["events"] == [shown]


def test_showing_an_event_is_audited(api, audit_trail):
    event = record()
    api.get(f"/manage/audit/{event.id}")
    rows, _ = audit_trail("audit.show")
    assert rows[0].metadata["audit_event_id"] == str(event.id)


@pytest.mark.parametrize("event_id", [str(uuid.uuid4()), "nope", "a/b"])
def test_an_unknown_event_is_a_404(api, event_id):
    assert_json_error(api.get(f"/manage/audit/{event_id}"), 404, "audit event not found")


def test_an_empty_event_id_is_a_400(api):
    assert_json_error(api.get("/manage/audit/"), 400, "audit event ID is required")


def test_empty_pagination_and_filter_values_mean_the_defaults(api):
    record()
    body = listed(api, "?page=&page_size=&start_time=&end_time=&action=")
    assert body["pagination"]["page"] == 1 and body["pagination"]["page_size"] == 20
    assert len(body["events"]) == 1
