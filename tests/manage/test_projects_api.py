"""/manage/projects: every route and every error answer of the reference's project management API, with the
deliberate improvements (no full key in answers, 409 for a duplicate name)."""

import re
import uuid

import pytest

from projects.models import Project
from tests.manage.conftest import assert_json_error
from tokens.models import Token
from tokens.services import token_create, token_revoke

UPSTREAM_KEY = "sk-upstream-acme-key-1234567890"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

pytestmark = pytest.mark.django_db


def create(api, name="Beta", api_key="sk-proj-beta-0123456789abcdef"):
    response = api.post("/manage/projects", {"name": name, "api_key": api_key})
    assert response.status_code == 201, response.content
    return response.json()


# --- GET /manage/projects ---------------------------------------------------------


def test_listing_with_no_projects_is_an_empty_array(api):
    response = api.get("/manage/projects")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == []


def test_projects_are_listed_by_name_with_obfuscated_keys(api):
    create(api, "zeta", "sk-zeta-key-abcdefghijklmnop")
    create(api, "Alpha", "sk-alpha-key-abcdefghijklmnop")
    body = api.get("/manage/projects").json()
    assert [p["name"] for p in body] == ["Alpha", "zeta"]
    assert body[0]["api_key"] == "sk-alpha...mnop"
    assert set(body[0]) == {"id", "name", "api_key", "is_active", "created_at", "updated_at"}
    assert RFC3339_UTC.match(body[0]["created_at"]) and RFC3339_UTC.match(body[0]["updated_at"])


# --- POST /manage/projects --------------------------------------------------------


def test_creating_a_project_answers_201_with_the_key_obfuscated(api):
    response = api.post("/manage/projects", {"name": "Beta", "api_key": "sk-proj-beta-0123456789abcdef"})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Beta" and body["is_active"] is True
    assert body["api_key"] == "sk-proj-...cdef"  # the reference echoes the full key here
    assert "0123456789" not in response.content.decode()
    assert "deactivated_at" not in body
    project = Project.objects.get(id=body["id"])
    assert project.api_key == "sk-proj-beta-0123456789abcdef"
    assert project.api_key_encrypted != project.api_key


def test_unknown_json_content_type_is_still_read_as_json(api):
    # The reference decodes the body whatever the Content-Type (curl -d sends form encoding).
    response = api.client.post(
        "/manage/projects", '{"name":"Form","api_key":"sk-form-0123456789abc"}', "application/x-www-form-urlencoded"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "raw,message,description",
    [
        ("{not json", "invalid request body", None),
        ("", "invalid request body", "the request body is empty: send a JSON object"),
        ('["Beta", "key"]', "invalid request body", "the request body must be a JSON object, not an array"),
        ('{"name": 5, "api_key": "sk-1234567890abcdef"}', "invalid request body", "name must be a string"),
        ('{"name": "B", "api_key": true}', "invalid request body", "api_key must be a string"),
        ('{"name": "B", "api_key": "sk-1234567890abcdef", "openai_api_key": "x"}', "invalid request body",
         "unknown field: openai_api_key"),
        ('{"name": "B\\u0000", "api_key": "sk-1234567890abcdef"}', "invalid request body",
         "name must not contain NUL characters"),
        ('{"name": "\\ud800", "api_key": "sk-1234567890abcdef"}', "invalid request body",
         "name must be valid Unicode text"),
        ('{"name": "Beta"}', "name and api_key are required", None),
        ('{"api_key": "sk-1234567890abcdef"}', "name and api_key are required", None),
        ('{"name": "", "api_key": ""}', "name and api_key are required", None),
        ('{"name": null, "api_key": "sk-1234567890abcdef"}', "invalid request body",
         "name must not be null: leave the field out instead"),
        ("null", "invalid request body", "the request body must be a JSON object, not null"),
        ('{"name": "Beta", "api_key": "sk-proj-...cdef"}',
         "cannot save obfuscated API key - please provide the full API key", None),
        ('{"name": "Beta", "api_key": "sk-p****cdef"}',
         "cannot save obfuscated API key - please provide the full API key", None),
        ('{"name": "' + "n" * 256 + '", "api_key": "sk-1234567890abcdef"}',
         "name must be at most 255 characters", None),
        ('{"name": "Beta", "api_key": "' + "k" * 4097 + '"}', "api_key must be at most 4096 characters", None),
    ],
)  # fmt: skip
def test_bad_create_requests_are_400s_and_write_nothing(api, audit_trail, raw, message, description):
    response = api.post("/manage/projects", raw=raw)
    body = assert_json_error(response, 400, message)
    if description:
        assert body["description"] == description
    assert not Project.objects.exists()
    rows, lines = audit_trail("project.create")
    assert [r.outcome for r in rows] == ["failure"] and [line["result"] for line in lines] == ["failure"]
    assert "validation_error" in rows[0].metadata


def test_a_malformed_body_names_the_json_problem(api):
    body = api.post("/manage/projects", raw='{"name": "x",}').json()
    assert body["description"].startswith("the request body is not valid JSON")


def test_a_missing_field_failure_is_audited_with_what_was_provided(api, audit_trail):
    api.post("/manage/projects", {"name": "Beta"})
    rows, _ = audit_trail("project.create")
    assert rows[0].metadata["validation_error"] == "missing required fields"
    assert rows[0].metadata["name_provided"] is True and rows[0].metadata["api_key_provided"] is False


def test_a_duplicate_name_is_a_409_not_a_500(api, audit_trail):
    create(api, "Beta")
    response = api.post("/manage/projects", {"name": "Beta", "api_key": "sk-other-0123456789abcdef"})
    assert_json_error(response, 409, "a project with this name already exists")
    assert Project.objects.count() == 1
    rows, _ = audit_trail("project.create")
    assert [r.outcome for r in rows] == ["success", "failure"]


def test_a_body_over_max_request_size_is_a_413_before_anything_is_written(api, settings):
    settings.MAX_REQUEST_SIZE = 100
    response = api.post("/manage/projects", {"name": "Beta", "api_key": "k" * 200})
    assert_json_error(response, 413, "Request body too large", code="request_too_large")
    assert not Project.objects.exists()


def test_a_declared_content_length_over_the_limit_is_a_413(api, settings):
    settings.MAX_REQUEST_SIZE = 100
    response = api.client.post(
        "/manage/projects", '{"name":"a","api_key":"sk-1234567890abcdef"}', "application/json", CONTENT_LENGTH="5000"
    )
    assert_json_error(response, 413, "Request body too large", code="request_too_large")


def test_django_s_own_upload_limit_is_answered_as_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = api.post("/manage/projects", {"name": "Beta", "api_key": "sk-proj-beta-0123456789abcdef"})
    assert_json_error(response, 413, "Request body too large", code="request_too_large")


# --- GET /manage/projects/{id} ----------------------------------------------------


def test_showing_a_project_obfuscates_its_key(api, project):
    response = api.get(f"/manage/projects/{project.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(project.id) and body["name"] == "Acme"
    assert body["api_key"] == "sk-upstr...7890"


@pytest.mark.parametrize("project_id", [str(uuid.uuid4()), "not-a-uuid", "%00"])
def test_showing_an_unknown_project_is_a_404(api, project_id):
    assert_json_error(api.get(f"/manage/projects/{project_id}"), 404, "project not found")


@pytest.mark.parametrize("path", ["/manage/projects/", "/manage/projects/a/b"])
def test_an_empty_or_slashed_project_id_is_a_400(api, path):
    assert_json_error(api.get(path), 400, "invalid project id")


# --- PATCH /manage/projects/{id} --------------------------------------------------


def test_renaming_and_rekeying_a_project(api, project, audit_trail):
    response = api.patch(f"/manage/projects/{project.id}", {"name": "Acme 2", "api_key": "sk-new-key-abcdefghijkl"})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Acme 2" and body["api_key"] == "sk-new-k...ijkl"
    assert "abcdefghijkl" not in response.content.decode()
    project.refresh_from_db()
    assert project.api_key == "sk-new-key-abcdefghijkl"
    rows, _ = audit_trail("project.update")
    assert rows[-1].metadata["updated_fields"] == ["name", "api_key"]
    assert rows[-1].metadata["project_name"] == "Acme 2"


def test_an_empty_api_key_leaves_the_key_unchanged(api, project):
    assert api.patch(f"/manage/projects/{project.id}", {"api_key": ""}).status_code == 200
    project.refresh_from_db()
    assert project.api_key == UPSTREAM_KEY


def test_deactivating_sets_deactivated_at_and_reactivating_clears_it(api, project):
    body = api.patch(f"/manage/projects/{project.id}", {"is_active": False}).json()
    assert body["is_active"] is False and RFC3339_UTC.match(body["deactivated_at"])
    body = api.patch(f"/manage/projects/{project.id}", {"is_active": True}).json()
    assert body["is_active"] is True and "deactivated_at" not in body


def test_deactivating_with_revoke_tokens_revokes_the_active_tokens(api, project, audit_trail):
    token_create(project=project, duration_minutes=60)
    token_create(project=project, duration_minutes=60)
    response = api.patch(f"/manage/projects/{project.id}", {"is_active": False, "revoke_tokens": True})
    assert response.status_code == 200
    assert not Token.objects.filter(is_active=True).exists()
    rows, _ = audit_trail("project.update")
    assert rows[-1].metadata["tokens_revoked"] == 2


def test_revoke_tokens_on_an_already_inactive_project_leaves_tokens_alone(api, project):
    token, _ = token_create(project=project, duration_minutes=60)
    api.patch(f"/manage/projects/{project.id}", {"is_active": False})
    api.patch(f"/manage/projects/{project.id}", {"is_active": False, "revoke_tokens": True})
    token.refresh_from_db()
    assert token.is_active is True


@pytest.mark.parametrize(
    "body", [{"revoke_tokens": True}, {"revoke_tokens": False}, {"is_active": True, "revoke_tokens": True}]
)
def test_revoke_tokens_requires_is_active_false(api, project, body):
    response = api.patch(f"/manage/projects/{project.id}", body)
    assert_json_error(response, 400, "revoke_tokens requires is_active=false")


@pytest.mark.parametrize(
    "raw,message",
    [
        ("nope", "invalid request body"),
        ('{"is_active": "false"}', "invalid request body"),
        ('{"name": 1}', "invalid request body"),
        ('{"colour": "red"}', "invalid request body"),
        ('{"api_key": "sk-upstr...7890"}', "cannot save obfuscated API key - please provide the full API key"),
        ('{"name": ""}', "name must not be empty"),
        ('{"name": "' + "n" * 256 + '"}', "name must be at most 255 characters"),
    ],
)
def test_bad_update_requests_are_400s_and_change_nothing(api, project, audit_trail, raw, message):
    before = Project.objects.values().get(id=project.id)
    assert_json_error(api.patch(f"/manage/projects/{project.id}", raw=raw), 400, message)
    assert Project.objects.values().get(id=project.id) == before
    rows, _ = audit_trail("project.update")
    assert rows[-1].outcome == "failure" and "validation_error" in rows[-1].metadata


def test_a_wrongly_typed_field_is_named(api, project):
    body = api.patch(f"/manage/projects/{project.id}", {"is_active": "false"}).json()
    assert body["description"] == "is_active must be a boolean (true or false)"


def test_updating_an_unknown_project_is_a_404(api, audit_trail):
    response = api.patch(f"/manage/projects/{uuid.uuid4()}", {"name": "x"})
    assert_json_error(response, 404, "project not found")
    rows, _ = audit_trail("project.update")
    assert rows[-1].metadata["error_type"] == "project not found"


def test_a_body_error_is_reported_before_a_missing_project(api):
    assert_json_error(api.patch(f"/manage/projects/{uuid.uuid4()}", raw="nope"), 400, "invalid request body")


def test_renaming_onto_an_existing_name_is_a_409(api, project):
    create(api, "Beta")
    response = api.patch(f"/manage/projects/{project.id}", {"name": "Beta"})
    assert_json_error(response, 409, "a project with this name already exists")


@pytest.mark.parametrize("path", ["/manage/projects/", "/manage/projects/a/b"])
def test_updating_an_empty_or_slashed_project_id_is_a_400(api, audit_trail, path):
    assert_json_error(api.patch(path, {"name": "x"}), 400, "invalid project id")
    rows, _ = audit_trail("project.update")
    assert rows[-1].metadata["validation_error"] == "invalid project id"
    assert rows[-1].metadata["provided_id"] == path.removeprefix("/manage/projects/")


# --- DELETE /manage/projects/{id} -------------------------------------------------


def test_deleting_a_project_is_refused_and_audited(api, project, audit_trail):
    response = api.delete(f"/manage/projects/{project.id}")
    assert_json_error(response, 405, "method not allowed", message="project deletion is not permitted")
    assert response["Allow"] == "GET, PATCH"
    assert response.content == b'{"error":"method not allowed","message":"project deletion is not permitted"}\n'
    assert Project.objects.filter(id=project.id).exists()
    rows, lines = audit_trail("project.delete")
    assert rows[0].outcome == "failure" and rows[0].project_id == str(project.id)
    assert rows[0].metadata["error_type"] == "method not allowed"
    assert lines[0]["details"]["reason"] == "project deletion is not permitted"


# --- POST /manage/projects/{id}/tokens/revoke -------------------------------------


def test_bulk_revocation_counts_revoked_and_already_revoked_tokens(api, project, audit_trail):
    for _ in range(2):
        token_create(project=project, duration_minutes=60)
    token_revoke(token=token_create(project=project, duration_minutes=60)[0])
    response = api.post(f"/manage/projects/{project.id}/tokens/revoke")
    assert response.status_code == 200
    assert response.json() == {"revoked_count": 2, "already_revoked_count": 1, "total_tokens": 3}
    assert not Token.objects.filter(is_active=True).exists()
    rows, _ = audit_trail("token.revoke_batch")
    expected = {"total_tokens": 3, "revoked_count": 2, "already_revoked_count": 1, "failed_count": 0}
    assert rows[0].metadata.items() >= expected.items()


def test_bulk_revocation_of_a_project_without_tokens(api, project):
    response = api.post(f"/manage/projects/{project.id}/tokens/revoke")
    assert response.json() == {"revoked_count": 0, "already_revoked_count": 0, "total_tokens": 0}


@pytest.mark.parametrize("project_id", [str(uuid.uuid4()), "nope", "a/b"])
def test_bulk_revocation_of_an_unknown_project_is_a_404(api, audit_trail, project_id):
    response = api.post(f"/manage/projects/{project_id}/tokens/revoke")
    assert_json_error(response, 404, "project not found")
    rows, _ = audit_trail("token.revoke_batch")
    assert rows[0].outcome == "failure" and rows[0].metadata["error_type"] == "project not found"


def test_bulk_revocation_without_a_project_id_is_an_invalid_path(api):
    assert_json_error(api.post("/manage/projects//tokens/revoke"), 400, "invalid path")
