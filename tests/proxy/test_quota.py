"""What counts against a quota (as the reference counts), the guarded quota update and the batched usage counters."""

import asyncio

import httpx

from tests.proxy.conftest import database_queries
from tests.support.waiting import wait_until
from tokens.models import Token

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def request_count(token) -> int:
    return Token.objects.get(id=token.id).request_count


def test_fifty_concurrent_requests_on_a_quota_of_ten_give_exactly_ten_passes(proxy_server, limited_token):
    token, headers = limited_token(10)

    async def burst():
        async with httpx.AsyncClient(base_url=proxy_server.url, timeout=20) as client:
            responses = await asyncio.gather(*[client.get("/v1/models", headers=headers) for _ in range(50)])
        return sorted(r.status_code for r in responses)

    statuses = asyncio.run(burst())
    assert statuses == [200] * 10 + [429] * 40
    assert request_count(token) == 10


def test_requests_refused_before_the_token_check_are_not_counted(http, limited_token, proxy_server):
    token, headers = limited_token(5)
    proxy_server.configure(param_whitelist={"model": ["gpt-4o"]}, allowed_origins=["https://ok.example"])
    http.options("/v1/models", headers=headers)  # preflight
    http.put("/v1/models", headers=headers)  # 405
    http.get("/v1/unknown", headers=headers)  # 404
    http.post("/v1/chat/completions", headers=headers, json=CHAT)  # 400 whitelist
    http.get("/v1/models", headers={**headers, "Origin": "https://bad.example"})  # 403 origin
    assert request_count(token) == 0


def test_requests_that_fail_after_the_token_check_are_counted(http, limited_token, proxy_server):
    token, headers = limited_token(5)
    proxy_server.upstream.reply("/v1/models", method="GET", status=500, json_body={"error": "boom"})
    assert http.get("/v1/models", headers=headers).status_code == 500
    proxy_server.configure(base_url="http://127.0.0.1:9")
    assert http.get("/v1/models", headers=headers).status_code == 502
    assert request_count(token) == 2


def test_limited_tokens_are_counted_at_once_with_last_use(http, limited_token):
    token, headers = limited_token(3)
    http.get("/v1/models", headers=headers)
    stored = Token.objects.get(id=token.id)
    assert stored.request_count == 1 and stored.last_used_at is not None


def test_raising_the_quota_lets_an_exhausted_token_through_again(http, limited_token):
    from tokens.services import token_update

    token, headers = limited_token(1)
    assert [http.get("/v1/models", headers=headers).status_code for _ in range(2)] == [200, 429]
    token_update(token=Token.objects.get(id=token.id), max_requests=2)
    assert http.get("/v1/models", headers=headers).status_code == 200


def test_unlimited_tokens_are_counted_off_the_request_path_within_five_seconds(http, auth, token_pair):
    token = token_pair[0]
    with database_queries() as queries:
        for _ in range(3):
            assert http.get("/v1/models", headers=auth).status_code == 200
    # the first request's token lookup (the generation watch's background reads aside); counting comes later
    assert len([sql for sql in queries if "proxy_invalidation_generation" not in sql]) == 1
    wait_until(lambda: request_count(token) >= 3, interval=0.1, message="3 requests counted")
    stored = Token.objects.get(id=token.id)
    assert stored.request_count == 3 and stored.last_used_at is not None


def test_usage_counters_are_flushed_at_shutdown(proxy_server, auth, token_pair, settings):
    settings.USAGE_STATS_FLUSH_INTERVAL = 60
    with httpx.Client(base_url=proxy_server.url) as client:
        client.get("/v1/models", headers=auth)
    assert request_count(token_pair[0]) == 0
    proxy_server.live.stop()
    assert request_count(token_pair[0]) == 1


def test_inactive_project_requests_are_not_counted(http, limited_token, project):
    from projects.services import project_deactivate

    token, headers = limited_token(5)
    project_deactivate(project=project)
    assert http.get("/v1/models", headers=headers).status_code == 403
    assert request_count(token) == 0
