"""The fakes reject what the real services reject (a bare array, a bad token, a duplicate start; what Helicone's
worker refuses) with the same answers."""

import httpx

from tests.support.fake_services import HELICONE_KEY, LUNARY_KEY

START = {"type": "llm", "event": "start", "runId": "7d9a3c1e-2b4f-4a6e-8c5d-0e1f2a3b4c5d", "name": "m", "input": []}
LOG = {
    "providerRequest": {"url": "/v1/chat/completions", "json": {"model": "m"}, "meta": {}},
    "providerResponse": {"status": 200, "headers": {}, "json": {}},
    "timing": {"startTime": {"seconds": 10, "milliseconds": 0}, "endTime": {"seconds": 11, "milliseconds": 0}},
}


def lunary_post(server, body, key=LUNARY_KEY):
    return httpx.post(f"{server.url}/v1/runs/ingest", json=body, headers={"Authorization": f"Bearer {key}"})


def helicone_post(server, body, auth=f"Bearer {HELICONE_KEY}"):
    return httpx.post(f"{server.url}/oai/v1/log", json=body, headers={"Authorization": auth})


def test_fake_lunary_rejects_a_bare_array_a_bad_token_and_a_duplicate_start(fake_lunary):
    assert (lunary_post(fake_lunary, [START]).status_code, lunary_post(fake_lunary, [START]).json()) == (
        500,
        {"message": "Missing events payload."},
    )
    bad = lunary_post(fake_lunary, {"events": [START]}, key="not-a-uuid")
    assert (bad.status_code, bad.json()) == (401, {"message": "Invalid access token"})
    assert lunary_post(fake_lunary, {"events": [START]}).json()["results"][0]["success"] is True
    duplicate = lunary_post(fake_lunary, {"events": [START]}).json()["results"][0]
    assert duplicate["success"] is False and "already exists" in duplicate["error"]


def test_fake_helicone_rejects_what_the_worker_rejects(fake_helicone):
    no_json = {**LOG, "providerResponse": {"status": 200, "headers": {}, "textBody": "hi"}}
    answer = helicone_post(fake_helicone, no_json)
    assert (answer.status_code, answer.json()) == (400, {"error": "Invalid providerResponse: 'json' is undefined"})
    string_status = {**LOG, "providerResponse": {**LOG["providerResponse"], "status": "200"}}
    assert "'status' should be a number" in helicone_post(fake_helicone, string_status).json()["error"]
    reversed_timing = {**LOG, "timing": {"startTime": LOG["timing"]["endTime"], "endTime": LOG["timing"]["startTime"]}}
    assert helicone_post(fake_helicone, reversed_timing).json() == {"error": "startTime cannot be greater than endTime"}
    no_bearer = helicone_post(fake_helicone, LOG, auth=HELICONE_KEY)
    assert (no_bearer.status_code, no_bearer.json()) == (401, {"error": "Must included Bearer in API Key"})
    unknown = helicone_post(fake_helicone, LOG, auth="Bearer sk-helicone-zzz1234-def5678-ghi9012-jkl3456")
    assert (unknown.status_code, unknown.json()) == (200, {"error": "Auth failed! undefined"})
    accepted = helicone_post(fake_helicone, LOG)
    assert (accepted.status_code, accepted.text) == (200, "ok") and accepted.headers["helicone-id"]
