"""Every management operation leaves an audit event, as the reference's audit logger does, in the database and
in AUDIT_LOG_FILE."""

import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from audit.models import AuditEvent
from projects.models import Project
from tokens.models import hash_token
from tokens.services import token_create

# Transactional: a JSONL line is written when the transaction that made the event commits.
pytestmark = pytest.mark.django_db(transaction=True)


def jsonl_lines():
    with open(settings.AUDIT_LOG_FILE, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_every_management_action_is_audited_once_in_the_database_and_the_file(api, project):
    token, _ = token_create(project=project, duration_minutes=60)
    AuditEvent.objects.all().delete()
    open(settings.AUDIT_LOG_FILE, "w").close()

    api.get("/manage/projects")
    created = api.post("/manage/projects", {"name": "Beta", "api_key": "sk-beta-0123456789abcdef"}).json()
    api.patch(f"/manage/projects/{created['id']}", {"name": "Beta 2"})
    api.delete(f"/manage/projects/{created['id']}")
    api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 5})
    api.get("/manage/tokens")
    api.get(f"/manage/tokens/{token.id}")
    api.patch(f"/manage/tokens/{token.id}", {"max_requests": 3})
    api.delete(f"/manage/tokens/{token.id}")
    api.post(f"/manage/projects/{project.id}/tokens/revoke")
    api.get("/manage/audit")
    api.get(f"/manage/audit/{AuditEvent.objects.first().id}")

    expected = [
        ("project.list", "success"), ("project.create", "success"), ("project.update", "success"),
        ("project.delete", "failure"), ("token.create", "success"), ("token.list", "success"),
        ("token.read", "success"), ("token.update", "success"), ("token.revoke", "success"),
        ("token.revoke_batch", "success"), ("audit.list", "success"), ("audit.show", "success"),
    ]  # fmt: skip
    rows = AuditEvent.objects.order_by("timestamp")
    assert [(r.action, r.outcome) for r in rows] == expected
    assert [(line["action"], line["result"]) for line in jsonl_lines()] == expected
    assert {r.actor for r in rows} == {"management_api"}


@pytest.mark.parametrize(
    "call,action",
    [
        (lambda api: api.post("/manage/projects", raw="{"), "project.create"),
        (lambda api: api.patch(f"/manage/projects/{uuid.uuid4()}", {"name": "x"}), "project.update"),
        (lambda api: api.post("/manage/tokens", {"duration_minutes": 5}), "token.create"),
        (lambda api: api.get(f"/manage/tokens/{uuid.uuid4()}"), "token.read"),
        (lambda api: api.patch(f"/manage/tokens/{uuid.uuid4()}", {"is_active": True}), "token.update"),
        (lambda api: api.delete(f"/manage/tokens/{uuid.uuid4()}"), "token.revoke"),
        (lambda api: api.post(f"/manage/projects/{uuid.uuid4()}/tokens/revoke"), "token.revoke_batch"),
    ],
)
def test_failures_are_audited_too(api, call, action):
    response = call(api)
    assert 400 <= response.status_code < 500
    row = AuditEvent.objects.get(action=action)
    assert row.outcome == "failure"
    assert [line["result"] for line in jsonl_lines() if line["action"] == action] == ["failure"]


def test_an_event_records_the_request_it_came_from(api):
    api.get(
        "/manage/projects",
        HTTP_X_REQUEST_ID="req-abc",
        HTTP_X_CORRELATION_ID="corr-abc",
        HTTP_X_FORWARDED_FOR="203.0.113.5",
        HTTP_USER_AGENT="curl/8.5",
    )
    row = AuditEvent.objects.get(action="project.list")
    assert (row.request_id, row.correlation_id, row.client_ip) == ("req-abc", "corr-abc", "203.0.113.5")
    assert (row.method, row.path, row.user_agent) == ("GET", "/manage/projects", "curl/8.5")
    assert row.metadata["project_count"] == 0 and row.metadata["http_method"] == "GET"
    assert row.metadata["endpoint"] == "/manage/projects"
    line = jsonl_lines()[-1]
    assert line["request_id"] == "req-abc" and line["client_ip"] == "203.0.113.5"
    assert line["details"]["user_agent"] == "curl/8.5" and line["timestamp"].endswith("Z")


def test_a_generated_request_id_is_the_one_in_the_response_and_the_event(api):
    response = api.get("/manage/projects")
    assert AuditEvent.objects.get(action="project.list").request_id == response["X-Request-ID"]


# The test client's peer is 127.0.0.1, inside the default TRUSTED_PROXIES (loopback).
@pytest.mark.parametrize(
    "headers,client_ip",
    [
        ({"HTTP_X_FORWARDED_FOR": "198.51.100.1"}, "198.51.100.1"),
        # The rightmost hop that is not a trusted proxy: the leftmost entries are whatever the client wrote.
        ({"HTTP_X_FORWARDED_FOR": " 6.6.6.6 , 198.51.100.1", "HTTP_X_REAL_IP": "192.0.2.9"}, "198.51.100.1"),
        ({"HTTP_X_FORWARDED_FOR": "198.51.100.1, 127.0.0.2"}, "198.51.100.1"),
        ({"HTTP_X_REAL_IP": "192.0.2.9"}, "192.0.2.9"),
        ({"REMOTE_ADDR": "192.0.2.77"}, "192.0.2.77"),
    ],
)
def test_a_trusted_proxy_peer_is_recorded_with_the_forwarded_client(api, headers, client_ip):
    api.get("/manage/projects", **headers)
    assert AuditEvent.objects.get(action="project.list").client_ip == client_ip


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_FORWARDED_FOR": "198.51.100.1"},
        {"HTTP_X_REAL_IP": "192.0.2.9"},
        {"HTTP_X_FORWARDED_FOR": "198.51.100.1, 10.0.0.2", "HTTP_X_REAL_IP": "192.0.2.9"},
    ],
)
def test_a_peer_outside_trusted_proxies_is_recorded_with_its_own_address(api, settings, headers):
    settings.TRUSTED_PROXIES = ["10.9.0.0/16"]
    api.get("/manage/projects", **headers)
    assert AuditEvent.objects.get(action="project.list").client_ip == "127.0.0.1"


def test_a_peer_inside_a_configured_trusted_network_is_believed(api, settings):
    settings.TRUSTED_PROXIES = ["192.0.2.0/24"]
    api.get("/manage/projects", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.44, 192.0.2.11")
    assert AuditEvent.objects.get(action="project.list").client_ip == "203.0.113.44"


def test_the_admin_ui_forwarding_headers_are_recorded(api):
    api.get(
        "/manage/projects",
        HTTP_USER_AGENT="python-httpx",
        HTTP_X_FORWARDED_USER_AGENT="Firefox/130",
        HTTP_X_FORWARDED_REFERER="https://admin.example/projects",
        HTTP_X_ADMIN_ORIGIN="1",
    )
    row = AuditEvent.objects.get(action="project.list")
    assert row.user_agent == "Firefox/130"
    assert row.metadata["referer"] == "https://admin.example/projects" and row.metadata["origin"] == "admin-ui"


def test_no_response_or_audit_record_carries_a_full_key_or_token_or_hash(api, project):
    secret_key = "sk-upstream-very-secret-0123456789"
    created = api.post("/manage/projects", {"name": "Secret", "api_key": secret_key})
    updated = api.patch(f"/manage/projects/{created.json()['id']}", {"api_key": secret_key + "X"})
    minted = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 5})
    token = minted.json()["token"]
    token_hash = hash_token(token)
    texts = [r.content.decode() for r in (created, updated, api.get("/manage/projects"), api.get("/manage/tokens"))]
    texts += [
        api.get(f"/manage/tokens/{minted.json()['id']}").content.decode(),
        api.get("/manage/audit").content.decode(),
    ]
    texts.append(Path(settings.AUDIT_LOG_FILE).read_text(encoding="utf-8"))
    for text in texts:
        assert "very-secret" not in text and token not in text and token_hash not in text


def test_oversized_client_headers_never_cost_the_write_or_its_audit_row(api):
    # On PostgreSQL a too-long audit column used to abort the service's transaction: 201, but nothing saved.
    response = api.post(
        "/manage/projects",
        {"name": "Long headers", "api_key": "sk-long-0123456789abcdef"},
        HTTP_X_REQUEST_ID="r" * 300,
        HTTP_X_FORWARDED_FOR="1" * 100,
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == "r" * 300
    assert Project.objects.filter(name="Long headers").exists()
    row = AuditEvent.objects.get(action="project.create", project_id=response.json()["id"])
    assert row.request_id == "r" * 128 and row.client_ip == "1" * 64
    assert jsonl_lines()[-1]["request_id"] == "r" * 300
