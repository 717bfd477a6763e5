"""Helpers for the management API tests: JSON calls with the management token, and the audit trail."""

import json

import pytest
from django.conf import settings

from audit.models import AuditEvent


class ManageAPI:
    """The management API as a client sees it: JSON in, response out."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete(path, **kwargs)

    def post(self, path, body=None, *, raw=None, **kwargs):
        return self.client.post(path, _payload(body, raw), content_type="application/json", **kwargs)

    def patch(self, path, body=None, *, raw=None, **kwargs):
        return self.client.patch(path, _payload(body, raw), content_type="application/json", **kwargs)


def _payload(body, raw) -> str:
    if raw is not None:
        return raw
    return "" if body is None else json.dumps(body)


@pytest.fixture
def api(manage_client):
    return ManageAPI(manage_client)


@pytest.fixture
def audit_trail(transactional_db):
    """Audit events of an action, oldest first: (database rows, JSONL lines).

    Transactional: a JSONL line is written when the transaction that made the event commits, and a plain
    `django_db` test never commits.
    """

    def read(action: str):
        rows = list(AuditEvent.objects.filter(action=action).order_by("timestamp"))
        try:
            with open(settings.AUDIT_LOG_FILE, encoding="utf-8") as fh:
                lines = [json.loads(line) for line in fh if line.strip()]
        except FileNotFoundError:
            lines = []
        return rows, [line for line in lines if line["action"] == action]

    return read


def assert_json_error(response, status: int, message: str, /, **extra) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == message, body
    for key, value in extra.items():
        assert body[key] == value, body
    return body
