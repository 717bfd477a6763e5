"""The shared cast: a project, a token, an admin user, a management client and a fake upstream."""

import pytest
from django.test import Client

from projects.services import project_create
from tests.support.fake_upstream import FakeUpstream
from tokens.services import token_create

MANAGEMENT_TOKEN = "test-management-token"


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MANAGEMENT_TOKEN = MANAGEMENT_TOKEN
    settings.AUDIT_LOG_FILE = str(tmp_path / "audit.log")
    settings.DATA_DIR = tmp_path
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    settings.REDIS_CONFIGURED = False
    settings.FILE_EVENT_LOG = ""


@pytest.fixture(scope="session")
def fake_upstream_server():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fake_upstream(fake_upstream_server):
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture
def project(db):
    return project_create(name="Acme", api_key="sk-upstream-acme-key-1234567890")


@pytest.fixture
def token_pair(project):
    """(token row, secret) of a 60-minute unlimited token."""
    return token_create(project=project, duration_minutes=60)


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-password-123")


@pytest.fixture
def manage_client():
    """A Django test client that authenticates to /manage with the management token."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {MANAGEMENT_TOKEN}")
