"""Database failures answer the reference's 500 messages as JSON and are audited; the API also works over ASGI."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections
from django.test import AsyncClient

from audit.models import AuditEvent
from projects.models import Project
from tests.conftest import MANAGEMENT_TOKEN
from tests.manage.conftest import assert_json_error
from tokens.models import Token

AUTH = {"Authorization": f"Bearer {MANAGEMENT_TOKEN}"}


@pytest.fixture
async def asgi_client():
    """An ASGI test client; the sync views run in asgiref's worker thread, whose connections are closed after."""
    yield AsyncClient()
    await sync_to_async(connections.close_all)()


def _fail(*args, **kwargs):
    raise DatabaseError("database is down")


@pytest.mark.django_db
def test_a_failing_project_listing_is_a_json_500_and_audited(api, monkeypatch, audit_trail):
    monkeypatch.setattr(Project.objects, "order_by", _fail)
    assert_json_error(api.get("/manage/projects"), 500, "failed to list projects")
    rows, lines = audit_trail("project.list")
    assert rows[0].outcome == "failure" and rows[0].metadata["error"] == "failed to list projects"
    assert lines[0]["result"] == "failure"


@pytest.mark.django_db
def test_a_failing_token_store_is_a_json_500_and_leaves_no_token(api, project, monkeypatch, audit_trail):
    monkeypatch.setattr(Token, "save", _fail)
    response = api.post("/manage/tokens", {"project_id": str(project.id), "duration_minutes": 5})
    assert_json_error(response, 500, "failed to store token")
    monkeypatch.undo()
    assert not Token.objects.exists()
    rows, _ = audit_trail("token.create")
    assert [r.outcome for r in rows] == ["failure"]


@pytest.mark.django_db
def test_a_failing_token_listing_is_a_json_500(api, monkeypatch):
    monkeypatch.setattr(Token.objects, "order_by", _fail)
    assert_json_error(api.get("/manage/tokens"), 500, "failed to list tokens")


@pytest.mark.django_db(transaction=True)
async def test_the_api_works_over_asgi(asgi_client):
    client = asgi_client
    body = json.dumps({"name": "Async", "api_key": "sk-async-0123456789abcdef"})
    created = await client.post("/manage/projects", body, "application/json", headers=AUTH)
    assert created.status_code == 201 and created["X-Request-ID"]
    listed = await client.get("/manage/projects", headers=AUTH)
    assert [p["name"] for p in listed.json()] == ["Async"]
    missing = await client.get("/manage/nothing")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"
    assert await AuditEvent.objects.filter(action="project.create", outcome="success").aexists()


@pytest.mark.django_db(transaction=True)
async def test_an_oversized_body_is_a_413_over_asgi(settings, asgi_client):
    settings.MAX_REQUEST_SIZE = 50
    body = json.dumps({"name": "Async", "api_key": "k" * 100})
    response = await asgi_client.post("/manage/projects", body, "application/json", headers=AUTH)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large", "code": "request_too_large"}
    assert not await Project.objects.aexists()
