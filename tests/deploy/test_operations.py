"""Operations procedures of docs/operations.md that rest on a script: rotating ENCRYPTION_KEY."""

import base64
import importlib.util
import os
import subprocess
import sys

import pytest

from audit.models import AuditEvent
from projects import crypto
from projects.models import Project
from projects.services import project_create
from tests.deploy.conftest import ROOT

SCRIPT = ROOT / "scripts" / "rotate-encryption-key.py"
OLD_KEY = base64.b64encode(b"o" * 32).decode()
NEW_KEY = base64.b64encode(b"n" * 32).decode()


def load_script():
    spec = importlib.util.spec_from_file_location("rotate_encryption_key", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def old_key(settings):
    settings.ENCRYPTION_KEY = OLD_KEY
    return settings


@pytest.mark.django_db
def test_rotation_reencrypts_every_project_key_for_the_new_encryption_key(old_key):
    project_create(name="One", api_key="sk-upstream-one-0123456789")
    project_create(name="Two", api_key="sk-upstream-two-0123456789")
    rotate = load_script().rotate

    assert rotate(base64.b64decode(NEW_KEY), dry_run=False) == (2, 0)
    assert rotate(base64.b64decode(NEW_KEY), dry_run=False) == (0, 2)  # a second run changes nothing

    old_key.ENCRYPTION_KEY = NEW_KEY
    assert sorted(p.api_key for p in Project.objects.all()) == [
        "sk-upstream-one-0123456789",
        "sk-upstream-two-0123456789",
    ]
    old_key.ENCRYPTION_KEY = OLD_KEY
    with pytest.raises(crypto.DecryptionError):
        _ = Project.objects.get(name="One").api_key
    first, second = AuditEvent.objects.filter(action="encryption_key.rotate").order_by("timestamp")
    assert first.actor == "cli" and first.metadata["projects_reencrypted"] == 2
    assert second.metadata == {"projects_reencrypted": 0, "projects_already_rotated": 2}


@pytest.mark.django_db
def test_rotation_with_the_wrong_current_key_changes_nothing(old_key):
    project_create(name="One", api_key="sk-upstream-one-0123456789")
    before = Project.objects.get().api_key_encrypted
    old_key.ENCRYPTION_KEY = base64.b64encode(b"w" * 32).decode()
    with pytest.raises(crypto.DecryptionError, match="'One'"):
        load_script().rotate(base64.b64decode(NEW_KEY), dry_run=False)
    assert Project.objects.get().api_key_encrypted == before


@pytest.mark.django_db
def test_a_dry_run_only_checks(old_key):
    project_create(name="One", api_key="sk-upstream-one-0123456789")
    before = Project.objects.get().api_key_encrypted
    assert load_script().rotate(base64.b64decode(NEW_KEY), dry_run=True) == (1, 0)
    assert Project.objects.get().api_key_encrypted == before


def test_the_new_key_must_be_32_base64_bytes_on_standard_input():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], input="not-a-key\n", capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 1 and "32 bytes, base64-encoded" in result.stderr
