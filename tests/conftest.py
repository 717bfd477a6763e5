"""The shared cast: a project, a token, an admin user, a management client and a fake upstream."""

import json
import os

import pytest
from django.test import Client

from instrumentation import bus as instrumentation_bus
from llmproxy.manage import auth_failures
from projects.services import project_create
from tests.support.fake_upstream import FakeUpstream
from tokens.services import token_create

# Production-grade secrets (llmproxy/checks.py refuses weak ones outside DJANGO_DEBUG=true), the same in this
# process's settings and in the environment that the servers tests start as subprocesses inherit, so that
# they accept this token and decrypt the project keys this process wrote.
MANAGEMENT_TOKEN = "mgmt-suite-4f9c2a7e1b8d6053c4a9e2f7b1d8c6a3"
SERVER_SECRETS = {
    "MANAGEMENT_TOKEN": MANAGEMENT_TOKEN,
    "SECRET_KEY": "suite-signing-key-6b1e9d4a7c2f8e5b3a0d9c6f1e4b7a2d8c5f0e3b",
    "ENCRYPTION_KEY": "bGxtLXByb3h5IHRlc3Qtc3VpdGUgY2lwaGVyIGtleSE=",  # base64 of 32 bytes
}
os.environ.update(SERVER_SECRETS)


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MANAGEMENT_TOKEN = MANAGEMENT_TOKEN
    settings.SECRET_KEY = SERVER_SECRETS["SECRET_KEY"]
    settings.ENCRYPTION_KEY = SERVER_SECRETS["ENCRYPTION_KEY"]
    settings.AUDIT_LOG_FILE = str(tmp_path / "audit.log")
    settings.DATA_DIR = tmp_path
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    settings.REDIS_CONFIGURED = False
    settings.FILE_EVENT_LOG = ""
    # Django's default hasher costs ~0.5 s per admin user here; tests do not need its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Each test gets a bus that follows its own settings, with no subscriber left by an earlier test.
    instrumentation_bus.reset_for_tests()
    auth_failures.reset_for_tests()
    yield
    instrumentation_bus.reset_for_tests()
    auth_failures.reset_for_tests()


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


# --- the proxy on a real socket -------------------------------------------------------------------

TEST_PROVIDER = {
    "allowed_endpoints": [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/files",
        "/v1/audio/speech",
        "/v1/moderations",
        "/v1/slow",
        "/v1/echo",
    ],
    "allowed_methods": ["GET", "POST", "DELETE", "OPTIONS"],
}


class ProxyServer:
    """What `proxy_server` yields: the running app, its fake upstream and a way to change the provider YAML."""

    def __init__(self, live, upstream, config_path) -> None:
        self.live = live
        self.upstream = upstream
        self.config_path = config_path

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. http://127.0.0.1:PORT (the openai SDK's base_url is url + "/v1")."""
        return self.live.url

    def configure(self, **provider_fields) -> None:
        """Rewrite the provider YAML with these fields of `apis.openai` changed (e.g. allowed_origins=[...],
        timeouts={"response_header": "1s"}); takes effect for the next request."""
        from llmproxy.proxy.state import runtime

        write_provider_config(self.config_path, self.upstream.url, **provider_fields)
        runtime().providers.reload()


def write_provider_config(path, upstream_url: str, **provider_fields) -> None:
    provider = {"base_url": upstream_url, **TEST_PROVIDER, **provider_fields}
    path.write_text(json.dumps({"default_api": "openai", "apis": {"openai": provider}}, indent=2))  # JSON is YAML


@pytest.fixture
def proxy_server(transactional_db, settings, tmp_path, fake_upstream):
    """The real ASGI application (`llmproxy.asgi.application`: /v1 proxy, /manage, /metrics, ...) on a real
    socket, served by uvicorn in a background thread with the ASGI lifespan (start-up/shutdown hooks run),
    sharing this process's settings and test database. API_CONFIG_PATH points at a temp YAML whose
    provider `base_url` is `fake_upstream`. Per-process proxy state (caches, breaker) starts fresh: each server
    gets a new ProxyRuntime.

        def test_chat(proxy_server, token_pair):
            client = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1])
    """
    from llmproxy.proxy import state
    from llmproxy.proxy.runtime import ProxyRuntime
    from tests.support.asgi_server import LiveASGIServer

    config_path = tmp_path / "api_providers.yaml"
    write_provider_config(config_path, fake_upstream.url)
    settings.API_CONFIG_PATH = str(config_path)
    state.install(ProxyRuntime())
    from llmproxy.asgi import application

    live = LiveASGIServer(application).start()
    yield ProxyServer(live, fake_upstream, config_path)
    live.stop()
    state.install(ProxyRuntime())
