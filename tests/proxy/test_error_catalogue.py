"""Every row of the reference's error catalogue: status, exact JSON body, Content-Type, X-Request-ID."""

import json
import uuid

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from projects.models import Project
from tests.proxy.conftest import database_down
from tokens.models import Token

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def assert_error(response, status: int, body: bytes) -> None:
    assert response.status_code == status
    assert response.content == body + b"\n"  # Go's json.Encoder: compact, fields error/description/code
    assert response.headers["content-type"] == "application/json"
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


def test_method_not_in_allowed_methods_is_405(http, auth):
    response = http.put("/v1/chat/completions", headers=auth, json=CHAT)
    assert_error(response, 405, b'{"error":"Method not allowed","code":"method_not_allowed"}')


def test_path_outside_allowed_endpoints_is_404_before_authentication(http, proxy_server):
    response = http.get("/v1/assistants")
    assert_error(response, 404, b'{"error":"Endpoint not found","code":"endpoint_not_found"}')
    assert proxy_server.upstream.requests == []


def test_dot_segments_cannot_walk_out_of_an_allowed_endpoint(http, auth):
    response = http.get("/v1/models/%2E%2E/assistants", headers=auth)
    assert_error(response, 404, b'{"error":"Endpoint not found","code":"endpoint_not_found"}')


def test_parameter_outside_the_whitelist_is_400(http, auth, proxy_server):
    proxy_server.configure(param_whitelist={"model": ["gpt-4o", "gpt-4o-*"]})
    response = http.post("/v1/chat/completions", headers=auth, json={**CHAT, "model": "gpt-3.5-turbo"})
    assert_error(
        response,
        400,
        b"{\"error\":\"Parameter 'model' value 'gpt-3.5-turbo' is not allowed. "
        b'Allowed patterns: [gpt-4o gpt-4o-*]","code":"param_not_allowed"}',
    )
    assert http.post("/v1/chat/completions", headers=auth, json=CHAT).status_code == 200


def test_origin_required_by_the_provider_is_400(http, auth, proxy_server):
    proxy_server.configure(required_headers=["origin"])
    response = http.get("/v1/models", headers=auth)
    assert_error(response, 400, b'{"error":"Origin header required","code":"origin_required"}')


def test_origin_not_in_allowed_origins_is_403(http, auth, proxy_server):
    proxy_server.configure(allowed_origins=["https://app.example.com"])
    response = http.get("/v1/models", headers={**auth, "Origin": "https://evil.example.com"})
    assert_error(response, 403, b'{"error":"Origin not allowed","code":"origin_not_allowed"}')
    assert http.get("/v1/models", headers={**auth, "Origin": "https://app.example.com"}).status_code == 200


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Token sk-abc"])
def test_missing_or_non_bearer_authorization_is_401(http, header):
    response = http.get("/v1/models", headers={"Authorization": header} if header else {})
    assert_error(
        response,
        401,
        b'{"error":"Invalid token","description":"missing or invalid authorization header","code":"invalid_token"}',
    )


def test_bearer_scheme_is_case_insensitive(http, token_pair):
    assert http.get("/v1/models", headers={"Authorization": f"bEaReR  {token_pair[1]}"}).status_code == 200


def test_malformed_token_is_401_with_the_format_description(http):
    response = http.get("/v1/models", headers={"Authorization": "Bearer sk-short"})
    assert_error(
        response,
        401,
        b'{"error":"Invalid token","description":"invalid token format: invalid token format","code":"invalid_token"}',
    )


def test_unknown_token_is_401(http):
    response = http.get("/v1/models", headers={"Authorization": "Bearer sk-" + "A" * 22})
    assert_error(response, 401, b'{"error":"Token not found","code":"token_not_found"}')


def test_revoked_token_is_401(http, auth, token_pair):
    from tokens.services import token_revoke

    assert http.get("/v1/models", headers=auth).status_code == 200
    token_revoke(token=token_pair[0])
    assert_error(http.get("/v1/models", headers=auth), 401, b'{"error":"Token is inactive","code":"token_inactive"}')


def test_expired_token_is_401(http, auth, token_pair):
    Token.objects.filter(id=token_pair[0].id).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert_error(http.get("/v1/models", headers=auth), 401, b'{"error":"Token has expired","code":"token_expired"}')


def test_token_expiring_while_cached_is_refused(http, auth, token_pair):
    Token.objects.filter(id=token_pair[0].id).update(expires_at=timezone.now() + timezone.timedelta(seconds=1))
    assert http.get("/v1/models", headers=auth).status_code == 200
    import time

    time.sleep(1.1)  # deliberate: past the token's expiry, while its cache entry is still fresh
    assert http.get("/v1/models", headers=auth).status_code == 401


def test_exhausted_quota_is_429(http, limited_token):
    _, headers = limited_token(1)
    assert http.get("/v1/models", headers=headers).status_code == 200
    response = http.get("/v1/models", headers=headers)
    assert_error(response, 429, b'{"error":"Rate limit exceeded","code":"rate_limit_exceeded"}')


def test_inactive_project_is_403_and_audited(http, auth, project, token_pair):
    from projects.services import project_deactivate

    project_deactivate(project=project)
    response = http.get("/v1/models", headers=auth)
    assert_error(response, 403, b'{"error":"Project is inactive","code":"project_inactive"}')
    event = AuditEvent.objects.get(action="proxy_request")
    assert (event.outcome, event.reason, event.actor) == ("denied", "project_inactive", "system")
    assert (event.project_id, event.token_id) == (str(project.id), str(token_pair[0].id))
    assert event.request_id == response.headers["x-request-id"]


def test_database_failure_during_the_token_check_is_503_without_error_text(http, auth):
    with database_down():
        response = http.get("/v1/models", headers=auth)
    assert_error(response, 503, b'{"error":"Service temporarily unavailable","code":"service_unavailable"}')
    assert http.get("/v1/models", headers=auth).status_code == 200  # and it recovers


def test_database_failure_during_the_project_check_is_503_and_audited(http, auth, settings):
    settings.LLM_PROXY_API_KEY_CACHE_TTL = 0  # the project is read on every request, the token stays cached
    assert http.get("/v1/models", headers=auth).status_code == 200
    with database_down():
        response = http.get("/v1/models", headers=auth)
    assert_error(response, 503, b'{"error":"Service temporarily unavailable","code":"service_unavailable"}')
    with open(settings.AUDIT_LOG_FILE) as log:  # the database copy failed with the database, the file has it
        lines = [json.loads(line) for line in log if '"proxy_request"' in line]
    assert [(line["result"], line["details"]["reason"]) for line in lines] == [("error", "service_unavailable")]


def test_undecryptable_upstream_key_is_503(http, auth, project):
    Project.objects.filter(id=project.id).update(api_key_encrypted="enc:v1:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0LWF0LWFsbA==")
    response = http.get("/v1/models", headers=auth)
    assert_error(
        response,
        503,
        b'{"error":"Upstream authentication error","description":"failed to load upstream API key",'
        b'"code":"upstream_auth_error"}',
    )


def test_unreachable_upstream_is_502(http, auth, proxy_server):
    proxy_server.configure(base_url="http://127.0.0.1:9")
    assert_error(http.get("/v1/models", headers=auth), 502, b'{"error":"Proxy error"}')


def test_upstream_slower_than_request_timeout_is_504(http, auth, proxy_server, settings):
    settings.REQUEST_TIMEOUT = 0.5
    proxy_server.upstream.reply("/v1/chat/completions", json_body={"ok": True}, delay=3)
    response = http.post("/v1/chat/completions", headers=auth, json=CHAT)
    assert_error(response, 504, b'{"error":"Request timeout","code":"timeout"}')
    assert response.elapsed.total_seconds() < 2


def test_upstream_headers_later_than_response_header_timeout_is_504_for_streams_too(http, auth, proxy_server):
    proxy_server.configure(timeouts={"response_header": "500ms"})
    proxy_server.upstream.reply("/v1/chat/completions", json_body={"ok": True}, delay=3)
    response = http.post("/v1/chat/completions", headers=auth, json={**CHAT, "stream": True})
    assert_error(response, 504, b'{"error":"Request timeout","code":"timeout"}')


def test_upstream_errors_pass_through_unchanged(http, auth, proxy_server):
    error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    proxy_server.upstream.reply("/v1/chat/completions", status=429, json_body=error, headers={"Retry-After": "7"})
    response = http.post("/v1/chat/completions", headers=auth, json=CHAT)
    assert response.status_code == 429
    assert response.json() == error
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-proxy"] == "llm-proxy"


def test_request_body_over_max_request_size_is_413_before_forwarding(http, auth, proxy_server, settings):
    settings.MAX_REQUEST_SIZE = 1000
    response = http.post("/v1/chat/completions", headers=auth, content=b"x" * 1001)
    assert_error(response, 413, b'{"error":"Request body too large","code":"request_too_large"}')
    chunked = http.post("/v1/chat/completions", headers=auth, content=iter([b"x" * 600, b"x" * 600]))
    assert chunked.status_code == 413
    assert proxy_server.upstream.requests == []
    assert http.post("/v1/chat/completions", headers=auth, content=json.dumps(CHAT)).status_code == 200


def test_management_body_over_max_request_size_is_413(http, settings):
    settings.MAX_REQUEST_SIZE = 1000
    response = http.post("/manage/projects", headers={"Authorization": "Bearer x"}, content=b"{" + b" " * 2000 + b"}")
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large", "code": "request_too_large"}
    assert response.headers["content-type"] == "application/json"


def test_error_bodies_escape_html_like_go(http, auth, proxy_server):
    proxy_server.configure(param_whitelist={"model": ["gpt-4o"]})
    response = http.post("/v1/chat/completions", headers=auth, json={**CHAT, "model": "<b>&"})
    assert b"\\u003cb\\u003e\\u0026" in response.content
    assert response.json()["error"].startswith("Parameter 'model' value '<b>&'")
