"""/manage/tokens: every route and every error answer of the reference's token management API (the check order
included)."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from projects.services import project_deactivate
from tests.manage.conftest import assert_json_error
from tokens.models import Token, format_error, hash_token
from tokens.services import token_create, token_revoke

pytestmark = pytest.mark.django_db
OBFUSCATED = re.compile(r"^sk-[A-Za-z0-9_-]{4}\*{14}[A-Za-z0-9_-]{4}$")
TOKEN_FIELDS = {
    "id", "token", "project_id", "expires_at", "is_active", "request_count",
    "max_requests", "created_at", "last_used_at", "cache_hit_count",
}  # fmt: skip


# --- POST /manage/tokens ------------------------------------------------------------


def test_creating_a_token_answers_200_with_the_full_token_once(api, project, audit_trail):
    before = timezone.now()
    response = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 90})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "token", "expires_at"}  # max_requests omitted when unlimited
    assert format_error(body["token"]) is None
    token = Token.objects.get(id=body["id"])
    assert token.token_hash == hash_token(body["token"]) and token.max_requests is None
    assert body["expires_at"].endswith("Z")
    assert before + timedelta(minutes=90) <= token.expires_at <= timezone.now() + timedelta(minutes=90)
    rows, lines = audit_trail("token.create")
    assert rows[0].outcome == "success" and rows[0].token_id == body["id"]
    assert rows[0].metadata["duration_minutes"] == 90 and "expires_at" in rows[0].metadata
    assert body["token"] not in str(rows[0].metadata) and body["token"] not in str(lines)


def test_a_limited_token_reports_its_max_requests(api, project):
    body = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 5, "max_requests": 10}).json()
    assert body["max_requests"] == 10
    assert Token.objects.get(id=body["id"]).max_requests == 10


def test_max_requests_zero_means_unlimited(api, project):
    body = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 5, "max_requests": 0}).json()
    assert "max_requests" not in body
    assert Token.objects.get(id=body["id"]).max_requests is None


INVALID = "invalid request body"
REQUIRED = "project_id and duration_minutes are required"
TOO_LONG = "duration_minutes exceeds maximum allowed"


@pytest.mark.parametrize(
    "body,message,audited_as",
    [
        ("nope", INVALID, INVALID),
        ({"project_id": "P", "duration_minutes": "60"}, INVALID, INVALID),
        ({"project_id": 5, "duration_minutes": 60}, INVALID, INVALID),
        ({"project_id": "P", "duration_minutes": 1.5}, INVALID, INVALID),
        ({"project_id": "P", "duration_minutes": True}, INVALID, INVALID),
        ({"project_id": "P", "duration_minutes": 60, "expires_in_days": 1}, INVALID, INVALID),
        ({"project_id": "P", "duration_minutes": 525601}, TOO_LONG, "duration exceeds maximum"),
        ({"duration_minutes": 525601}, TOO_LONG, "duration exceeds maximum"),  # duration before project_id
        ({"project_id": "P"}, REQUIRED, "missing duration_minutes"),
        ({}, REQUIRED, "missing duration_minutes"),
        ({"project_id": "P", "duration_minutes": 0}, REQUIRED, "missing duration_minutes"),
        ({"project_id": "P", "duration_minutes": -5}, REQUIRED, "missing duration_minutes"),
        ({"duration_minutes": 60}, "project_id is required", "missing project_id"),
        (
            {"project_id": "", "duration_minutes": 60, "max_requests": -1},
            "project_id is required",
            "missing project_id",
        ),
        ({"project_id": "P", "duration_minutes": 60, "max_requests": -1}, "max_requests must be >= 0", None),
        (
            {"project_id": "P", "duration_minutes": 60, "max_requests": 2**31},
            "max_requests must be <= 2147483647",
            None,
        ),
    ],
)
def test_bad_create_requests_are_400s_in_the_reference_order(api, project, audit_trail, body, message, audited_as):
    if isinstance(body, dict) and body.get("project_id") == "P":
        body["project_id"] = str(project.id)
    response = api.post("/manage/tokens", raw=body) if isinstance(body, str) else api.post("/manage/tokens", body)
    assert_json_error(response, 400, message)
    assert not Token.objects.exists()
    rows, lines = audit_trail("token.create")
    assert rows[0].outcome == "failure" and rows[0].metadata["validation_error"] == (audited_as or message)
    assert lines[0]["result"] == "failure"


def test_a_too_long_duration_is_audited_with_the_numbers(api, project, audit_trail):
    api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 600000})
    rows, _ = audit_trail("token.create")
    assert rows[0].metadata["requested_duration_minutes"] == 600000
    assert rows[0].metadata["max_duration_minutes"] == 525600


@pytest.mark.parametrize("project_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_a_token_for_an_unknown_project_is_a_404(api, audit_trail, project_id):
    response = api.post("/manage/tokens", {"project_id": project_id, "duration_minutes": 60})
    assert_json_error(response, 404, "project not found")
    rows, _ = audit_trail("token.create")
    assert rows[0].metadata["error_type"] == "project not found" and rows[0].project_id == project_id


def test_a_token_for_an_inactive_project_is_a_403_with_a_code(api, project, audit_trail):
    project_deactivate(project=project)
    response = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 60})
    assert_json_error(response, 403, "cannot create tokens for inactive projects", code="project_inactive")
    assert not Token.objects.exists()
    rows, lines = audit_trail("token.create")
    assert len(rows) == 1 and rows[0].outcome == "failure" and rows[0].metadata["error_type"] == "project_inactive"
    assert len(lines) == 1


# --- GET /manage/tokens ---------------------------------------------------------------


def test_listing_with_no_tokens_is_an_empty_array(api):
    assert api.get("/manage/tokens").json() == []


def test_tokens_are_listed_newest_first_obfuscated_with_real_counters(api, project, audit_trail):
    older, older_secret = token_create(project=project, duration_minutes=60, max_requests=3)
    Token.objects.filter(id=older.id).update(
        created_at=timezone.now() - timedelta(hours=1), request_count=2, cache_hit_count=7
    )
    newer, newer_secret = token_create(project=project, duration_minutes=60)
    response = api.get("/manage/tokens")
    body = response.json()
    assert [t["id"] for t in body] == [str(newer.id), str(older.id)]
    assert set(body[0]) == TOKEN_FIELDS
    assert OBFUSCATED.match(body[1]["token"]) and body[1]["token"] == older.obfuscated
    assert body[1]["request_count"] == 2 and body[1]["cache_hit_count"] == 7 and body[1]["max_requests"] == 3
    assert body[0]["max_requests"] is None and body[0]["last_used_at"] is None
    text = response.content.decode()
    for secret, token in ((older_secret, older), (newer_secret, newer)):
        assert secret not in text and token.token_hash not in text
    rows, _ = audit_trail("token.list")
    assert rows[0].metadata["token_count"] == 2 and "filtered_by_project" not in rows[0].metadata


def test_tokens_can_be_filtered_by_project_with_camel_case_project_id(api, project, audit_trail):
    from projects.services import project_create

    other = project_create(name="Other", api_key="sk-other-0123456789abcdef")
    mine, _ = token_create(project=project, duration_minutes=60)
    token_create(project=other, duration_minutes=60)
    body = api.get(f"/manage/tokens?projectId={project.id}").json()
    assert [t["id"] for t in body] == [str(mine.id)]
    rows, _ = audit_trail("token.list")
    assert rows[0].metadata["filtered_by_project"] is True and rows[0].project_id == str(project.id)


@pytest.mark.parametrize("query", [f"projectId={uuid.uuid4()}", "projectId=garbage"])
def test_filtering_by_an_unknown_project_lists_nothing(api, token_pair, query):
    assert api.get(f"/manage/tokens?{query}").json() == []


def test_the_snake_case_project_id_of_the_reference_readme_is_ignored(api, token_pair):
    assert len(api.get(f"/manage/tokens?project_id={uuid.uuid4()}").json()) == 1


# --- GET /manage/tokens/{id} ------------------------------------------------------------


def test_showing_a_token_by_id(api, token_pair, audit_trail):
    token, secret = token_pair
    response = api.get(f"/manage/tokens/{token.id}")
    assert response.status_code == 200
    body = response.json()
    assert (
        set(body) == TOKEN_FIELDS and body["token"] == token.obfuscated and body["project_id"] == str(token.project_id)
    )
    assert secret not in response.content.decode() and token.token_hash not in response.content.decode()
    rows, _ = audit_trail("token.read")
    assert rows[0].outcome == "success" and rows[0].token_id == str(token.id)


@pytest.mark.parametrize("token_id", [str(uuid.uuid4()), "sk-not-an-id", "a/b"])
def test_showing_an_unknown_token_is_a_404(api, audit_trail, token_id):
    assert_json_error(api.get(f"/manage/tokens/{token_id}"), 404, "token not found")
    rows, _ = audit_trail("token.read")
    assert rows[0].outcome == "failure" and rows[0].metadata["error_type"] == "token not found"


@pytest.mark.parametrize("method", ["get", "patch", "delete", "put"])
def test_a_missing_token_id_is_a_400_for_any_method(api, method):
    assert_json_error(getattr(api.client, method)("/manage/tokens/"), 400, "token ID is required")


# --- PATCH /manage/tokens/{id} ------------------------------------------------------------


def test_revoking_and_reactivating_a_token_by_patch(api, token_pair, audit_trail):
    token, _ = token_pair
    body = api.patch(f"/manage/tokens/{token.id}", {"is_active": False}).json()
    assert body["is_active"] is False
    body = api.patch(f"/manage/tokens/{token.id}", {"is_active": True}).json()
    assert body["is_active"] is True
    token.refresh_from_db()
    assert token.is_active and token.deactivated_at is None
    rows, _ = audit_trail("token.update")
    assert [r.metadata["updated_is_active"] for r in rows] == [False, True]


def test_changing_the_quota_and_back_to_unlimited(api, token_pair, audit_trail):
    token, _ = token_pair
    assert api.patch(f"/manage/tokens/{token.id}", {"max_requests": 50}).json()["max_requests"] == 50
    assert api.patch(f"/manage/tokens/{token.id}", {"max_requests": 0}).json()["max_requests"] is None
    rows, _ = audit_trail("token.update")
    assert [r.metadata["updated_max_requests"] for r in rows] == [50, "unlimited"]


@pytest.mark.parametrize(
    "raw,message",
    [
        ("nope", "invalid request body"),
        ('{"is_active": "no"}', "invalid request body"),
        ('{"max_requests": "5"}', "invalid request body"),
        ('{"token": "x"}', "invalid request body"),
        ('{"max_requests": -1}', "max_requests must be >= 0"),
        ("{}", "no fields to update"),
        ('{"is_active": null}', "invalid request body"),
    ],
)
def test_bad_update_requests_are_400s_and_change_nothing(api, token_pair, audit_trail, raw, message):
    token, _ = token_pair
    before = Token.objects.values().get(id=token.id)
    assert_json_error(api.patch(f"/manage/tokens/{token.id}", raw=raw), 400, message)
    assert Token.objects.values().get(id=token.id) == before
    rows, _ = audit_trail("token.update")
    assert rows[0].outcome == "failure"


def test_update_checks_the_body_then_the_token_then_the_values(api):
    missing = f"/manage/tokens/{uuid.uuid4()}"
    assert_json_error(api.patch(missing, raw="nope"), 400, "invalid request body")
    assert_json_error(api.patch(missing, {"max_requests": -1}), 404, "token not found")
    assert_json_error(api.patch(missing, {}), 404, "token not found")


# --- DELETE /manage/tokens/{id} ---------------------------------------------------------------


def test_revoking_a_token_is_204_and_idempotent(api, token_pair, audit_trail):
    token, _ = token_pair
    first = api.delete(f"/manage/tokens/{token.id}")
    assert first.status_code == 204 and first.content == b""
    token.refresh_from_db()
    assert token.is_active is False and token.deactivated_at is not None
    assert api.delete(f"/manage/tokens/{token.id}").status_code == 204
    rows, lines = audit_trail("token.revoke")
    assert [r.outcome for r in rows] == ["success", "success"]
    assert "already_revoked" not in rows[0].metadata and rows[1].metadata["already_revoked"] is True
    assert len(lines) == 2


def test_revoking_an_unknown_token_is_a_404(api, audit_trail):
    assert_json_error(api.delete(f"/manage/tokens/{uuid.uuid4()}"), 404, "token not found")
    rows, _ = audit_trail("token.revoke")
    assert rows[0].outcome == "failure" and rows[0].metadata["error_type"] == "token not found"


def test_a_revoked_token_is_listed_as_inactive(api, token_pair):
    token, _ = token_pair
    token_revoke(token=token)
    assert api.get("/manage/tokens").json()[0]["is_active"] is False
