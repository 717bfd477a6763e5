"""The circuit breaker (reference §3.8)."""

import time

import pytest


@pytest.fixture
def breaker_settings(settings):
    settings.CIRCUIT_BREAKER_THRESHOLD = 3
    settings.CIRCUIT_BREAKER_COOLDOWN = 0.5


def test_consecutive_upstream_failures_open_the_breaker_for_the_cooldown(breaker_settings, http, auth, proxy_server):
    proxy_server.upstream.reply("/v1/models", method="GET", status=503, json_body={"error": "down"})
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(3)] == [503] * 3
    proxy_server.upstream.reset()
    rejected = http.get("/v1/models", headers={**auth, "Origin": "https://app.example.com"})
    assert rejected.status_code == 503
    assert rejected.content == b'{"error":"Upstream unavailable (circuit breaker open)"}\n'
    assert "access-control-allow-origin" not in rejected.headers  # outside the CORS layer, as the reference
    assert rejected.headers["x-request-id"]
    assert http.options("/v1/models").status_code == 503  # everything, even preflights and bad tokens
    assert http.get("/v1/models").status_code == 503
    assert proxy_server.upstream.requests == []
    time.sleep(0.6)
    assert http.get("/v1/models", headers=auth).status_code == 200


def test_local_transport_errors_count_and_any_other_status_resets(breaker_settings, http, auth, proxy_server):
    proxy_server.configure(base_url="http://127.0.0.1:9")
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(2)] == [502, 502]
    assert http.get("/v1/unknown").status_code == 404  # resets the count
    assert [http.get("/v1/models", headers=auth).status_code for _ in range(2)] == [502, 502]
    proxy_server.configure()
    assert http.get("/v1/models", headers=auth).status_code == 200


def test_a_threshold_of_zero_disables_the_breaker(settings, http, auth, proxy_server):
    settings.CIRCUIT_BREAKER_THRESHOLD = 0
    proxy_server.upstream.reply("/v1/models", method="GET", status=502, json_body={})
    assert {http.get("/v1/models", headers=auth).status_code for _ in range(6)} == {502}
