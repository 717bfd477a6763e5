"""Purging: POST /manage/cache/purge and `manage.py cache_purge`, exact (every project) and by prefix."""

import json
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from llmproxy.proxy.cache_backends import CachedResponse, scoped_key
from llmproxy.proxy.cache_purge import purge_key
from llmproxy.proxy.state import runtime
from tests.conftest import MANAGEMENT_TOKEN

P1, P2 = "3f1c2a4e-0000-4000-8000-000000000001", "3f1c2a4e-0000-4000-8000-000000000002"
MODELS_KEY = purge_key("GET", "/v1/models")


def put(project: str, key: str) -> None:
    entry = CachedResponse(status_code=200, headers={"Content-Type": ["application/json"]}, body=b"{}")
    async_to_sync(runtime().cache.get().aset)(scoped_key(project, key), entry, 60)


def present(project: str, key: str) -> bool:
    return async_to_sync(runtime().cache.get().aget)(scoped_key(project, key)) is not None


def purge(client, body, **kwargs):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/manage/cache/purge", data=data, content_type="application/json", **kwargs)


def test_exact_purge_deletes_the_request_entry_in_every_project(db, manage_client, cache_backend_name):
    put(P1, MODELS_KEY)
    put(P2, MODELS_KEY)
    put(P1, purge_key("GET", "/v1/models?x=1"))
    response = purge(manage_client, {"method": "GET", "url": "https://api.openai.com/v1/models"})
    assert response.status_code == 200 and response.json() == {"deleted": True}
    assert not present(P1, MODELS_KEY) and not present(P2, MODELS_KEY)
    assert present(P1, purge_key("GET", "/v1/models?x=1"))
    assert purge(manage_client, {"method": "GET", "url": "/v1/models"}).json() == {"deleted": False}
    event = AuditEvent.objects.filter(action="cache.purge", outcome="success").first()
    assert event.metadata["purge_type"] == "exact" and event.metadata["cache_key"] == MODELS_KEY


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8080/v1/models",
        "http://[::1]/v1/models",
        "https://user:pw@proxy:443/v1/models",
        "//proxy:/v1/models",
    ],
)
def test_exact_purge_accepts_ip_literals_ports_and_user_info(db, manage_client, cache_backend_name, url):
    put(P1, MODELS_KEY)
    response = purge(manage_client, {"method": "GET", "url": url})
    assert response.status_code == 200 and response.json() == {"deleted": True}


def test_prefix_purge_counts_what_it_deleted(db, manage_client, cache_backend_name):
    put(P1, "abc1" + "0" * 60)
    put(P2, "abc2" + "0" * 60 + "|body=" + "f" * 64)
    put(P1, "abd" + "0" * 61)
    response = purge(manage_client, {"method": "GET", "url": "/v1/models", "prefix": "abc"})
    assert response.json() == {"deleted": 2}
    assert present(P1, "abd" + "0" * 61)
    event = AuditEvent.objects.filter(action="cache.purge").first()
    assert event.metadata["purge_type"] == "prefix" and event.metadata["deleted"] == 2


@pytest.mark.parametrize(
    ("body", "message", "reason"),
    [
        ("{not json", "invalid JSON", "invalid_json"),
        ({"method": 1, "url": "/v1/models"}, "invalid JSON", "invalid_json"),
        ({"url": "/v1/models", "prefix": "abc"}, "method and url are required", "missing_fields"),
        ({"method": "GET", "url": ""}, "method and url are required", "missing_fields"),
        ({"method": "GET", "url": "/v1/%zz"}, "invalid URL", "invalid_url"),
        ({"method": "GET", "url": "/v1/models\x01"}, "invalid URL", "invalid_url"),
        ({"method": "GET", "url": "http://[::1"}, "invalid URL", "invalid_url"),
        ({"method": "GET", "url": "http://[::1]x/v1/models"}, "invalid URL", "invalid_url"),
        ({"method": "GET", "url": "http://proxy:port/v1/models"}, "invalid URL", "invalid_url"),
    ],
)
def test_bad_purge_requests_get_the_reference_errors(db, manage_client, body, message, reason):
    response = purge(manage_client, body)
    assert response.status_code == 400 and response.json() == {"error": message}
    assert response["Content-Type"] == "application/json"
    assert AuditEvent.objects.get(action="cache.purge").reason == reason


def test_purge_with_caching_disabled_is_refused(db, manage_client, settings):
    settings.HTTP_CACHE_ENABLED = False
    response = purge(manage_client, {"method": "GET", "url": "/v1/models"})
    assert (response.status_code, response.json()) == (400, {"error": "caching is disabled"})


def test_purge_needs_the_management_token_and_post(db, client, manage_client):
    response = purge(client, {"method": "GET", "url": "/v1/models"}, HTTP_AUTHORIZATION="Bearer wrong")
    assert (response.status_code, response.json()) == (401, {"error": "invalid management token"})
    response = manage_client.get("/manage/cache/purge")
    assert (response.status_code, response.json()) == (405, {"error": "method not allowed"})


def test_the_command_purges_the_redis_cache_directly(db, settings, cache_backend_name):
    if cache_backend_name != "redis":
        with pytest.raises(CommandError, match="--remote"):
            call_command("cache_purge", "--method", "GET", "--url", "/v1/models")
        return
    put(P1, MODELS_KEY)
    put(P2, MODELS_KEY)
    out = StringIO()
    call_command("cache_purge", "--method", "GET", "--url", "/v1/models", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"deleted": True}
    put(P1, MODELS_KEY)
    out = StringIO()
    call_command("cache_purge", "--method", "GET", "--url", "/v1/models", "--prefix", MODELS_KEY[:6], stdout=out)
    assert out.getvalue().strip() == "Purged 1 entry."
    assert AuditEvent.objects.filter(action="cache.purge", actor="cli").count() == 2


def test_the_command_purges_through_a_running_server(proxy_server, settings, cache_backend_name):
    put(P1, MODELS_KEY)
    out = StringIO()
    call_command(
        "cache_purge", "--remote", "--api-base-url", proxy_server.url, "--management-token", MANAGEMENT_TOKEN,
        "--method", "GET", "--url", "/v1/models", stdout=out,
    )  # fmt: skip
    assert out.getvalue().strip() == "Purged the entry."
    assert not present(P1, MODELS_KEY)
    with pytest.raises(CommandError, match="401: invalid management token"):
        call_command(
            "cache_purge", "--remote", "--api-base-url", proxy_server.url, "--management-token", "nope",
            "--method", "GET", "--url", "/v1/models",
        )  # fmt: skip
