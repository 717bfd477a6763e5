"""The audit service: the row belongs to the caller's transaction and the file line is written when it commits."""

import json

import pytest
from django.conf import settings
from django.db import transaction

from audit.models import AuditEvent
from audit.services import AuditContext, audit_log, audited
from llmproxy.services import ServiceError

pytestmark = pytest.mark.django_db(transaction=True)


def file_lines() -> list[dict]:
    try:
        with open(settings.AUDIT_LOG_FILE, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def test_an_audited_write_rolled_back_leaves_neither_row_nor_line():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_log("project.create", "success", AuditContext(actor="cli"), details={"project_name": "Gone"})
        raise RuntimeError("the caller's write failed after the audit call")

    assert not AuditEvent.objects.exists()
    assert file_lines() == []


def test_an_audited_write_committed_leaves_both_row_and_line():
    with transaction.atomic():
        event = audit_log("project.create", "success", AuditContext(actor="cli"), details={"project_name": "Kept"})
        assert file_lines() == []  # not before the commit

    assert AuditEvent.objects.get().pk == event.pk
    assert [(line["action"], line["result"], line["details"]["project_name"]) for line in file_lines()] == [
        ("project.create", "success", "Kept")
    ]


def test_outside_a_transaction_the_line_is_written_at_once():
    audit_log("token.list", "success", details={"token_count": 0})

    assert [line["action"] for line in file_lines()] == ["token.list"]
    assert AuditEvent.objects.filter(action="token.list").count() == 1


def test_audited_records_a_service_error_as_a_failure_and_raises_it_on():
    ctx = AuditContext(actor="cli")
    with pytest.raises(ServiceError), audited(ctx, "project.create", project_id="p-1"):
        raise ServiceError("name and api_key are required", audit_reason="missing required fields")

    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.project_id, event.actor) == ("project.create", "failure", "p-1", "cli")
    assert event.metadata == {"validation_error": "missing required fields", "error": "name and api_key are required"}


def test_audited_leaves_an_already_audited_or_unexpected_error_alone():
    with pytest.raises(ServiceError), audited(AuditContext(), "token.create"):
        raise ServiceError("cannot create tokens for inactive projects", kind="forbidden", audited=True)
    with pytest.raises(KeyError), audited(AuditContext(), "token.create"):
        raise KeyError("not a caller's error")

    assert not AuditEvent.objects.exists()
    assert file_lines() == []
