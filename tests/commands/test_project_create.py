"""`manage.py project_create`."""

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from projects.models import Project


def run(*args):
    out = StringIO()
    call_command("project_create", *args, stdout=out)
    return out.getvalue().strip()


def test_prints_the_new_projects_id(db, capsys):
    printed = run("--name", "Acme", "--api-key", "sk-upstream-acme-key-1234567890")

    project = Project.objects.get(pk=uuid.UUID(printed))
    assert project.name == "Acme" and project.api_key == "sk-upstream-acme-key-1234567890"
    assert "sk-upstr...7890" in capsys.readouterr().err
    event = AuditEvent.objects.get(action="project.create")
    assert (event.actor, event.outcome, event.project_id) == ("cli", "success", str(project.pk))


def test_json_output_never_carries_the_full_key(db):
    body = json.loads(run("--name", "Acme", "--api-key", "sk-upstream-acme-key-1234567890", "--json"))
    assert body["name"] == "Acme" and body["is_active"] is True
    assert body["api_key"] == "sk-upstr...7890" and body["created_at"].endswith("Z")
    assert Project.objects.filter(pk=body["id"]).exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "Acme", "--api-key", "sk-upstre...7890"], "cannot save obfuscated API key"),
        (["--name", "Acme", "--api-key", "sk-up****7890"], "cannot save obfuscated API key"),
        (["--name", " ", "--api-key", "sk-key-abcdef123456"], "name and api_key are required"),
        (["--name", "x" * 256, "--api-key", "sk-key-abcdef123456"], "name must be at most 255 characters"),
        (["--name", "Acme"], "the following arguments are required: --api-key"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Project.objects.exists()


def test_a_duplicate_name_is_refused(project):
    with pytest.raises(CommandError, match="a project with this name already exists"):
        run("--name", "Acme", "--api-key", "sk-another-key-abcdef123456")
    assert Project.objects.count() == 1
