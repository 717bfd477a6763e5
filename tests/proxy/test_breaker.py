"""The circuit breaker: the reference's threshold and cooldown, kept per project."""

import time

import httpx
import pytest
from aiohttp import web

from llmproxy.proxy.breaker import MAX_TRACKED, Breaker
from llmproxy.proxy.state import runtime
from projects.services import project_create
from tokens.services import token_create

OTHER_KEY = "sk-upstream-other-key-0987654321"


@pytest.fixture
def breaker_settings(settings):
    settings.CIRCUIT_BREAKER_THRESHOLD = 3
    settings.CIRCUIT_BREAKER_COOLDOWN = 0.5


@pytest.fixture
def other_auth(db):
    """A token of a second project, with its own upstream key."""
    _, secret = token_create(project=project_create(name="Other", api_key=OTHER_KEY), duration_minutes=60)
    return {"Authorization": f"Bearer {secret}"}


def fail_for_project_key(upstream, path: str, status: int) -> None:
    """The upstream answers `status` to requests made with the first project's key, 200 to the other's."""

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == f"Bearer {OTHER_KEY}":
            return web.json_response({"object": "list", "data": []})
        return web.json_response({"error": "down"}, status=status)

    upstream.route("GET", path, handler)


def test_consecutive_upstream_failures_open_the_breaker_for_the_cooldown(breaker_settings, http, auth, proxy_server):
    proxy_server.upstream.reply("/v1/models", method="GET", status=503, json_body={"error": "down"})
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(3)] == [503] * 3
    proxy_server.upstream.reset()
    rejected = http.get("/v1/models", headers={**auth, "Origin": "https://app.example.com"})
    assert rejected.status_code == 503
    assert rejected.content == b'{"error":"Upstream unavailable (circuit breaker open)"}\n'
    assert "access-control-allow-origin" not in rejected.headers  # outside the CORS layer, as the reference
    assert rejected.headers["x-request-id"]
    assert http.post("/v1/chat/completions", headers=auth, json={"model": "m"}).status_code == 503
    assert proxy_server.upstream.requests == []
    time.sleep(0.6)  # deliberate: past the 0.5 s cooldown, after which the breaker lets requests through again
    assert http.get("/v1/models", headers=auth).status_code == 200


def test_requests_without_an_accepted_token_are_answered_as_usual_while_a_breaker_is_open(
    breaker_settings, http, auth, proxy_server
):
    proxy_server.upstream.reply("/v1/models", method="GET", status=502, json_body={})
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(3)] == [502] * 3
    assert http.get("/v1/models", headers=auth).status_code == 503
    # The breaker needs the project, so it comes after the token check: these never reach it.
    assert http.options("/v1/models").status_code == 204
    assert http.get("/v1/models").status_code == 401
    assert http.get("/v1/unknown", headers=auth).status_code == 404


def test_one_projects_failing_upstream_never_refuses_another_projects_requests(
    breaker_settings, http, auth, other_auth, proxy_server
):
    fail_for_project_key(proxy_server.upstream, "/v1/models", 503)
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(3)] == [503] * 3
    assert http.get("/v1/models", headers=auth).content.endswith(b'(circuit breaker open)"}\n')
    for _ in range(5):
        assert http.get("/v1/models", headers=other_auth).status_code == 200
    assert [r.headers["Authorization"] for r in proxy_server.upstream.requests] == [
        "Bearer sk-upstream-acme-key-1234567890"
    ] * 3 + [f"Bearer {OTHER_KEY}"] * 5


def test_local_transport_errors_count_and_any_other_upstream_status_resets(breaker_settings, http, auth, proxy_server):
    proxy_server.configure(base_url="http://127.0.0.1:9")  # connection refused: the proxy's 502
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(2)] == [502, 502]
    proxy_server.configure()
    assert http.get("/v1/models", headers=auth).status_code == 200  # resets the count
    proxy_server.configure(base_url="http://127.0.0.1:9")
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(2)] == [502, 502]
    proxy_server.configure()
    assert http.get("/v1/models", headers=auth).status_code == 200
    assert runtime().breaker.tracked() == 0  # a project whose last answer was good is not remembered


def test_slow_answers_that_time_out_never_open_the_breaker(breaker_settings, http, auth, proxy_server):
    proxy_server.configure(timeouts={"response_header": "200ms"})
    proxy_server.upstream.reply("/v1/slow", method="GET", json_body={"ok": True}, delay=0.5)
    statuses = [http.get("/v1/slow", headers=auth).status_code for _ in range(5)]
    assert statuses == [504] * 5
    assert runtime().breaker.tracked() == 0
    assert http.get("/v1/models", headers=auth).status_code == 200


def test_a_client_that_leaves_before_the_answer_is_not_an_upstream_failure(breaker_settings, proxy_server, auth, http):
    proxy_server.upstream.reply("/v1/slow", method="GET", json_body={"ok": True}, delay=1.0)
    for _ in range(4):
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(proxy_server.url + "/v1/slow", headers=auth, timeout=0.2)
    time.sleep(0.2)  # deliberate: time for a cancelled request to be (wrongly) counted as a failure
    assert runtime().breaker.tracked() == 0
    assert http.get("/v1/models", headers=auth).status_code == 200


def test_a_threshold_of_zero_disables_the_breaker(settings, http, auth, proxy_server):
    settings.CIRCUIT_BREAKER_THRESHOLD = 0
    proxy_server.upstream.reply("/v1/models", method="GET", status=502, json_body={})
    assert {http.get("/v1/models", headers=auth).status_code for _ in range(6)} == {502}
    assert runtime().breaker.tracked() == 0


def test_the_breaker_remembers_a_bounded_number_of_failing_projects(breaker_settings):
    breaker = Breaker()
    for number in range(MAX_TRACKED + 100):
        breaker.record(f"project-{number}", 502)
    assert breaker.tracked() == MAX_TRACKED
