"""Header rules as the reference applies them: what the upstream receives and what the client gets back; CORS."""

import gzip
import re
import uuid

from aiohttp import web

from tests.proxy.conftest import raw_request
from tests.support.fake_upstream import sse_chunks

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def test_upstream_gets_the_project_key_and_the_proxy_headers(http, auth, proxy_server, project):
    response = http.post(
        "/v1/chat/completions",
        headers={**auth, "X-Request-ID": "client-chosen", "OpenAI-Organization": "org-1", "Cookie": "a=b"},
        json=CHAT,
    )
    sent = {k.lower(): v for k, v in proxy_server.upstream.requests[-1].headers.items()}
    assert sent["authorization"] == "Bearer sk-upstream-acme-key-1234567890"
    assert (sent["x-proxy"], sent["x-proxy-version"], sent["x-proxy-id"]) == ("llm-proxy", "0.1.0", str(project.id))
    assert sent["x-request-id"] == response.headers["x-request-id"] != "client-chosen"
    assert uuid.UUID(sent["x-request-id"]).version == 4
    assert sent["x-upstream-request-start"].isdigit()
    assert (sent["openai-organization"], sent["cookie"]) == ("org-1", "a=b")
    assert sent["host"] == f"127.0.0.1:{proxy_server.upstream.port}"


def test_client_forwarding_headers_are_replaced_by_the_real_peer(http, auth, proxy_server):
    spoofed = {
        "X-Forwarded-For": "1.2.3.4",
        "X-Real-IP": "1.2.3.4",
        "CF-Connecting-IP": "1.2.3.4",
        "CF-IPCountry": "XX",
        "X-Client-IP": "1.2.3.4",
        "X-Original-Forwarded-For": "1.2.3.4",
    }
    http.get("/v1/models", headers={**auth, **spoofed})
    sent = proxy_server.upstream.requests[-1].headers
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert not {"X-Real-IP", "CF-Connecting-IP", "CF-IPCountry", "X-Client-IP", "X-Original-Forwarded-For"} & set(sent)


def test_hop_by_hop_headers_are_not_forwarded(http, auth, proxy_server):
    http.get("/v1/models", headers={**auth, "Connection": "keep-alive, X-Hop", "X-Hop": "1", "TE": "trailers"})
    sent = {name.lower() for name in proxy_server.upstream.requests[-1].headers}
    assert not {"x-hop", "te"} & sent


def test_path_and_query_pass_through_unchanged(http, auth, proxy_server):
    raw_paths = []

    async def handler(request):
        raw_paths.append(request.raw_path)
        return web.json_response({})

    proxy_server.upstream.route("GET", "/v1/files/file-a%2Fb", handler)
    proxy_server.upstream.route("GET", "/v1/files/file-a/b", handler)
    http.get("/v1/files/file-a%2Fb?limit=2&after=a%2Fb&x=%20", headers=auth)
    assert raw_paths == ["/v1/files/file-a%2Fb?limit=2&after=a%2Fb&x=%20"]


def get_raw(proxy_server, target: str, headers: str) -> bytes:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    return raw_request(proxy_server.url, request.encode())


def test_stream_query_adds_an_event_stream_accept_when_the_client_sent_none(proxy_server, token_pair):
    get_raw(proxy_server, "/v1/models?stream=true", f"Authorization: Bearer {token_pair[1]}\r\n")
    assert proxy_server.upstream.requests[-1].headers["Accept"] == "text/event-stream"


def test_client_gets_the_upstream_answer_with_the_proxy_headers(http, auth, proxy_server):
    response = http.post("/v1/chat/completions", headers=auth, json=CHAT)
    headers = response.headers
    assert headers["x-proxy"] == "llm-proxy"
    assert RFC3339_NANO.match(headers["x-proxy-received-at"])
    assert RFC3339_NANO.match(headers["x-proxy-final-response-at"])
    assert int(headers["x-upstream-request-stop"]) >= int(headers["x-upstream-request-start"]) > 0
    assert headers["content-length"] == str(len(response.content))
    assert headers["content-type"] == "application/json; charset=utf-8"


def test_streams_are_marked_unbuffered_and_skip_the_start_echo(http, auth, proxy_server):
    response = http.post("/v1/chat/completions", headers=auth, json={**CHAT, "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-accel-buffering"] == "no"
    assert "x-upstream-request-start" not in response.headers
    assert response.text == "".join(sse_chunks())


def test_upstream_hop_by_hop_headers_and_repeated_cookies(http, auth, proxy_server):
    async def handler(request):
        response = web.Response(body=b"{}", headers={"X-Hop": "1", "Connection": "X-Hop", "Keep-Alive": "timeout=5"})
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        return response

    proxy_server.upstream.route("GET", "/v1/models", handler)
    response = http.get("/v1/models", headers=auth)
    assert "x-hop" not in response.headers and "keep-alive" not in response.headers
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["x-multi"] == "one, two"


def test_compressed_bodies_pass_through_untouched(http, auth, proxy_server):
    packed = gzip.compress(b'{"object":"list","data":[]}')
    proxy_server.upstream.reply(
        "/v1/models",
        method="GET",
        body=packed,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    response = http.get("/v1/models", headers={**auth, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"object": "list", "data": []}
    assert proxy_server.upstream.requests[-1].headers["Accept-Encoding"] == "gzip"


def test_no_headers_are_invented_for_the_upstream(proxy_server, token_pair):
    get_raw(proxy_server, "/v1/models", f"Authorization: Bearer {token_pair[1]}\r\n")
    sent = {name.lower() for name in proxy_server.upstream.requests[-1].headers}
    assert not {"accept-encoding", "user-agent", "accept", "content-type"} & sent


def test_every_v1_response_carries_a_request_id(http, auth, proxy_server):
    responses = [
        http.get("/v1/models", headers=auth),
        http.get("/v1/unknown"),
        http.get("/v1/models"),
        http.options("/v1/models"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == 4


def test_v1_responses_skip_the_standard_middleware(http, auth):
    response = http.get("/v1/models", headers=auth)
    assert "x-frame-options" not in response.headers and "x-content-type-options" not in response.headers


# --- CORS ----------------------------------------------------------------------------------------------


def test_preflight_answers_204_with_the_reference_cors_headers(http, proxy_server):
    response = http.options(
        "/v1/anything/even/unlisted",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Headers": "authorization, x-custom"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    assert response.headers["access-control-allow-headers"] == "authorization, x-custom"
    assert response.headers["access-control-expose-headers"] == (
        "X-Request-ID, X-Proxy-ID, X-LLM-Proxy-Remote-Duration, X-LLM-Proxy-Remote-Duration-Ms"
    )
    assert response.headers["access-control-max-age"] == "86400"
    assert proxy_server.upstream.requests == []


def test_preflight_defaults_allowed_headers_and_needs_origin_for_cors(http):
    with_origin = http.options("/v1/models", headers={"Origin": "https://a.example"})
    assert with_origin.headers["access-control-allow-headers"] == "Authorization, Content-Type, X-Requested-With"
    without = http.options("/v1/models")
    assert without.status_code == 204
    assert not [h for h in without.headers if h.startswith("access-control-")]


def test_responses_echo_the_origin_and_vary_on_it(http, auth, proxy_server):
    proxy_server.upstream.reply("/v1/models", method="GET", json_body={}, headers={"Vary": "Accept-Encoding"})
    response = http.get("/v1/models", headers={**auth, "Origin": "https://app.example.com"})
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert response.headers["vary"] == "Accept-Encoding, Origin"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in response.headers


def test_local_errors_echo_the_origin_too(http):
    response = http.get("/v1/models", headers={"Origin": "https://app.example.com"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert response.headers["vary"] == "Origin"
