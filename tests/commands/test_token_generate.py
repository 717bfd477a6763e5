"""`manage.py token_generate`."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from projects.services import project_deactivate
from tokens.models import Token, format_error, hash_token


def run(*args):
    out = StringIO()
    call_command("token_generate", *args, stdout=out)
    return out.getvalue().strip()


def test_prints_a_working_token_and_stores_only_its_hash(project):
    secret = run("--project-id", str(project.pk), "--duration", "90", "--max-requests", "5")

    assert format_error(secret) is None
    token = Token.objects.get()
    assert token.token_hash == hash_token(secret) and token.project == project and token.max_requests == 5
    assert abs(token.expires_at - (timezone.now() + timedelta(minutes=90))) < timedelta(minutes=1)
    event = AuditEvent.objects.get(action="token.create")
    assert (event.actor, event.outcome, event.token_id) == ("cli", "success", str(token.pk))
    assert secret not in json.dumps(event.metadata)


def test_duration_defaults_to_a_day_and_requests_to_unlimited(project):
    run("--project-id", str(project.pk))
    token = Token.objects.get()
    assert token.max_requests is None
    assert abs(token.expires_at - (timezone.now() + timedelta(days=1))) < timedelta(minutes=1)


def test_json_output_matches_the_management_api(project):
    body = json.loads(run("--project-id", str(project.pk), "--duration", "60", "--max-requests", "3", "--json"))
    token = Token.objects.get()
    assert body["id"] == str(token.pk) and body["project_id"] == str(project.pk) and body["max_requests"] == 3
    assert hash_token(body["token"]) == token.token_hash and body["expires_at"].endswith("Z")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--project-id", "not-a-uuid"], "--project-id 'not-a-uuid' is not a project id"),
        (["--project-id", "7d4f1a40-0000-4000-8000-000000000000"], "project not found"),
        (["--duration", "0"], "--duration must be between 1 and 525600 minutes, got 0"),
        (["--duration", "525601"], "--duration must be between 1 and 525600 minutes"),
        (["--duration", "abc"], "argument --duration: invalid int value: 'abc'"),
        (["--max-requests", "-1"], "--max-requests must be >= 0, got -1"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(project, args, message):
    if "--project-id" not in args:
        args = ["--project-id", str(project.pk), *args]
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Token.objects.exists()


def test_an_inactive_project_gets_no_token(project):
    project_deactivate(project=project)
    with pytest.raises(CommandError, match="cannot create tokens for inactive projects"):
        run("--project-id", str(project.pk))
    assert not Token.objects.exists()
