"""The in-process token/project caches: no database query on the common request, and changes that reach them."""

import asyncio
import time

import httpx
import pytest

from llmproxy.proxy.state import runtime
from projects.services import project_update
from tests.proxy.conftest import database_queries
from tests.support.waiting import wait_until
from tokens.models import Token
from tokens.services import token_revoke


def test_the_common_request_makes_no_database_query(http, auth):
    assert http.get("/v1/models", headers=auth).status_code == 200
    with database_queries() as queries:
        for _ in range(5):
            assert http.get("/v1/models", headers=auth).status_code == 200
    assert queries == []


def test_revocation_in_this_process_takes_effect_at_once_under_concurrent_load(proxy_server, auth, token_pair):
    async def hammer():
        async with httpx.AsyncClient(base_url=proxy_server.url, timeout=10) as client:
            results = []
            revoked_at = None

            async def one():
                started = time.monotonic()
                response = await client.get("/v1/models", headers=auth)
                results.append((started, response.status_code))

            for round_ in range(12):
                if round_ == 6:
                    await asyncio.to_thread(token_revoke, token=token_pair[0])
                    revoked_at = time.monotonic()
                await asyncio.gather(*[one() for _ in range(8)])
            return results, revoked_at

    results, revoked_at = asyncio.run(hammer())
    assert {status for started, status in results if started < revoked_at} == {200}
    assert {status for started, status in results if started > revoked_at} == {401}


def test_deactivating_a_project_or_changing_its_key_takes_effect_at_once(http, auth, project, proxy_server):
    assert http.get("/v1/models", headers=auth).status_code == 200
    project_update(project=project, api_key="sk-upstream-new-key-0987654321")
    http.get("/v1/models", headers=auth)
    assert proxy_server.upstream.requests[-1].headers["Authorization"] == "Bearer sk-upstream-new-key-0987654321"
    project_update(project=project, is_active=False)
    assert http.get("/v1/models", headers=auth).status_code == 403
    project_update(project=project, is_active=True)
    assert http.get("/v1/models", headers=auth).status_code == 200


# --- Redis pub/sub, and Redis going away ---------------------------------------------------------------


@pytest.fixture
def redis_invalidation(settings, own_redis):
    settings.REDIS_CONFIGURED = True
    settings.REDIS_URL = own_redis.url
    return own_redis


def test_a_published_invalidation_clears_the_cache(redis_invalidation, http, auth, token_pair):
    invalidation = runtime().invalidation
    wait_until(invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    Token.objects.filter(id=token_pair[0].id).update(is_active=False)  # behind the cache's back...
    assert http.get("/v1/models", headers=auth).status_code == 200  # ...so still served from the cache
    invalidation.publish({"token": token_pair[0].token_hash})  # what another process's revocation sends
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 401, timeout=1, interval=0.05)


def test_redis_going_away_never_breaks_serving_and_shortens_cache_trust(redis_invalidation, http, auth, token_pair):
    invalidation = runtime().invalidation
    wait_until(invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    redis_invalidation.stop()
    wait_until(lambda: not invalidation.is_trusted(), timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    Token.objects.filter(id=token_pair[0].id).update(is_active=False)  # a change nobody could announce
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 401, timeout=1.5, interval=0.05)
    token_revoke(token=Token.objects.get(id=token_pair[0].id))  # publishing fails quietly
