"""Requests refused before any token was accepted: events without bodies, marked, and counted by reason."""

import gzip
import json

import httpx
import pytest

from tests.metrics.conftest import Scrape

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a stranger's text"}]}
EVENT_ONLY = ("X-Proxy-Refused", "X-Proxy-Request-Content-Encoding", "X-Proxy-Project-Id", "X-Proxy-Token-Id")


@pytest.fixture
def http(events, proxy_server):
    """httpx on the proxy (the in-memory bus and its collector exist before the server starts)."""
    with httpx.Client(base_url=proxy_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def auth(token_pair):
    return {"Authorization": f"Bearer {token_pair[1]}"}


def only_event(events) -> object:
    [event] = events.wait_for(1)
    return event


def assert_no_event_only_header_reached_the_client(response: httpx.Response) -> None:
    assert not {name.lower() for name in EVENT_ONLY} & {name.lower() for name in response.headers}


def test_an_unauthenticated_post_with_a_body_is_published_without_bodies(http, events):
    response = http.post("/v1/chat/completions", json=CHAT)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"  # the client still gets the whole error
    event = only_event(events)
    assert (event.method, event.path, event.status) == ("POST", "/v1/chat/completions", 401)
    assert (event.request_body, event.response_body) == (None, None)
    assert event.response_headers["X-Proxy-Refused"] == ["invalid_token"]
    assert "X-Proxy-Project-Id" not in event.response_headers
    assert b"a stranger's text" not in event.to_bytes()
    assert_no_event_only_header_reached_the_client(response)


def test_an_unknown_token_is_refused_with_its_code_as_the_reason(http, events):
    response = http.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-" + "A" * 22})

    assert response.status_code == 401
    event = only_event(events)
    assert event.response_headers["X-Proxy-Refused"] == ["token_not_found"]
    assert (event.request_body, event.response_body) == (None, None)


@pytest.mark.parametrize(
    ("method", "path", "provider", "headers", "status", "reason"),
    [
        ("PUT", "/v1/chat/completions", {}, {}, 405, "method_not_allowed"),
        ("POST", "/v1/unknown", {}, {}, 404, "endpoint_not_found"),
        ("POST", "/v1/chat/completions", {"param_whitelist": {"model": ["gpt-4o"]}}, {}, 400, "param_not_allowed"),
        ("POST", "/v1/chat/completions", {"required_headers": ["origin"]}, {}, 400, "origin_required"),
        (
            "POST",
            "/v1/chat/completions",
            {"allowed_origins": ["https://ok.example"]},
            {"Origin": "https://evil.example"},
            403,
            "origin_not_allowed",
        ),
    ],
)
def test_refusals_before_the_token_check_carry_no_bodies_even_with_a_valid_token(
    http, events, auth, proxy_server, method, path, provider, headers, status, reason
):
    proxy_server.configure(**provider)

    response = http.request(method, path, json=CHAT, headers={**auth, **headers})

    assert response.status_code == status
    event = only_event(events)
    assert event.status == status
    assert (event.request_body, event.response_body) == (None, None)
    assert event.response_headers["X-Proxy-Refused"] == [reason]
    assert_no_event_only_header_reached_the_client(response)
    assert proxy_server.upstream.requests == []


def test_an_accepted_request_keeps_both_bodies_and_no_refusal_mark(http, events, auth):
    response = http.post("/v1/chat/completions", json=CHAT, headers=auth)

    assert response.status_code == 200
    event = only_event(events)
    assert json.loads(event.request_body) == CHAT
    assert json.loads(event.response_body) == response.json()
    assert "X-Proxy-Refused" not in event.response_headers
    assert_no_event_only_header_reached_the_client(response)


def test_a_refusal_after_the_token_was_accepted_keeps_its_bodies(http, events, auth, project):
    project.is_active = False
    project.save(update_fields=["is_active"])

    response = http.post("/v1/chat/completions", json=CHAT, headers=auth)

    assert response.status_code == 403
    event = only_event(events)
    assert json.loads(event.request_body) == CHAT
    assert json.loads(event.response_body)["code"] == "project_inactive"
    assert "X-Proxy-Refused" not in event.response_headers


def test_the_request_content_encoding_is_carried_in_the_event_only(http, events, auth, proxy_server):
    compressed = gzip.compress(json.dumps(CHAT).encode())
    proxy_server.upstream.reply("/v1/echo", json_body={"ok": True})

    response = http.post(
        "/v1/echo", content=compressed, headers={**auth, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    )

    assert response.status_code == 200
    event = only_event(events)
    assert event.response_headers["X-Proxy-Request-Content-Encoding"] == ["gzip"]
    assert event.request_body == compressed  # as sent: consumers decode it because the header says so
    assert_no_event_only_header_reached_the_client(response)
    assert proxy_server.upstream.requests[-1].headers["Content-Encoding"] == "gzip"


def test_no_content_encoding_header_without_one_in_the_request(http, events, auth):
    http.post("/v1/chat/completions", json=CHAT, headers=auth)

    assert "X-Proxy-Request-Content-Encoding" not in only_event(events).response_headers


def test_refusals_are_counted_by_reason_in_both_metrics_endpoints(http, events, auth):
    def scrape() -> tuple[Scrape, dict]:
        return Scrape(http.get("/metrics/prometheus").text), http.get("/metrics").json()["requests_refused"]

    (before, before_json), name = scrape(), "llm_proxy_requests_refused_total"
    http.post("/v1/chat/completions", json=CHAT)
    http.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-" + "A" * 22})
    http.post("/v1/chat/completions", json=CHAT)
    http.put("/v1/chat/completions", json=CHAT)
    http.post("/v1/chat/completions", json=CHAT, headers=auth)  # accepted: not a refusal
    (after, after_json) = scrape()

    def moved(reason: str) -> float:
        return after.value(name, reason=reason) - before.value(name, reason=reason)

    assert (moved("invalid_token"), moved("token_not_found"), moved("method_not_allowed")) == (2, 1, 1)
    assert after_json["invalid_token"] - before_json.get("invalid_token", 0) == 2
    assert sum(after_json.values()) - sum(before_json.values()) == 4
    assert "# HELP llm_proxy_requests_refused_total Requests refused before any token was accepted" in after.text


def test_a_refusal_without_a_code_is_named_in_snake_case():
    from llmproxy.proxy.views import refusal_reason

    assert refusal_reason("Method not allowed") == "method_not_allowed"
    assert refusal_reason("Upstream unavailable (circuit breaker open)") == "upstream_unavailable_circuit_breaker_open"
    assert refusal_reason("!!!") == "refused"


def test_a_long_request_content_encoding_is_cut_in_the_event(http, events, auth, proxy_server):
    proxy_server.upstream.reply("/v1/echo", json_body={"ok": True})

    http.post("/v1/echo", content=b"{}", headers={**auth, "Content-Encoding": "gzip, " + "x" * 5000})

    [value] = only_event(events).response_headers["X-Proxy-Request-Content-Encoding"]
    assert value.startswith("gzip, x") and len(value) == 256


def test_a_body_over_max_request_size_is_refused_with_a_bodyless_event_and_counted(http, events, auth, settings):
    settings.MAX_REQUEST_SIZE = 1000
    name, reason = "llm_proxy_requests_refused_total", "request_too_large"
    before = Scrape(http.get("/metrics/prometheus").text).value(name, reason=reason)

    chunked = http.post("/v1/chat/completions", headers=auth, content=iter([b"x" * 600, b"y" * 600]))

    assert chunked.status_code == 413 and chunked.json()["code"] == "request_too_large"
    assert chunked.headers["X-Request-ID"]
    event = only_event(events)
    assert (event.status, event.request_body, event.response_body) == (413, None, None)
    assert event.response_headers["X-Proxy-Refused"] == ["request_too_large"]
    assert event.request_id == chunked.headers["X-Request-ID"]
    assert Scrape(http.get("/metrics/prometheus").text).value(name, reason=reason) == before + 1
