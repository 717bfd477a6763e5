"""The in-process token/project caches: no database query on the common request, and changes that reach them."""

import asyncio
import time

import httpx
import pytest

from llmproxy.proxy.generation import GENERATION_KEY, bump_database
from llmproxy.proxy.state import runtime
from projects.services import project_update
from tests.proxy.conftest import database_down, database_queries
from tests.support.waiting import wait_until
from tokens.models import Token
from tokens.services import token_revoke


def test_the_common_request_makes_no_database_query(http, auth):
    assert http.get("/v1/models", headers=auth).status_code == 200
    with database_queries() as queries:
        for _ in range(5):
            assert http.get("/v1/models", headers=auth).status_code == 200
    # only the generation watch's background read (twice a second, whatever the traffic) may run meanwhile
    assert [sql for sql in queries if "proxy_invalidation_generation" not in sql] == []


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


# --- the shared generation: changes of other processes, without any message --------------------------


def test_a_bumped_database_generation_clears_the_cache_within_a_second(http, auth, token_pair):
    invalidation = runtime().invalidation
    wait_until(invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    Token.objects.filter(id=token_pair[0].id).update(is_active=False)  # another process's revocation...
    assert http.get("/v1/models", headers=auth).status_code == 200  # ...not yet known here
    bump_database()  # ...which it announces by bumping the generation row after its commit
    bumped = time.monotonic()
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 401, timeout=1, interval=0.02)
    assert time.monotonic() - bumped < 1.0


def test_cached_tokens_keep_their_ttl_while_the_generation_is_read(http, auth, token_pair, settings):
    settings.TOKEN_CACHE_TTL = 2.5
    wait_until(runtime().invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    Token.objects.filter(id=token_pair[0].id).update(is_active=False)  # unannounced: only the TTL ends it
    time.sleep(1.5)
    assert http.get("/v1/models", headers=auth).status_code == 200  # trusted past 1 s, as before
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 401, timeout=2, interval=0.05)


def test_an_unreadable_generation_limits_trust_to_a_second(http, auth, token_pair):
    wait_until(runtime().invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    with database_down():
        assert http.get("/v1/models", headers=auth).status_code == 200  # cached: serving goes on
        # the watch cannot read the generation: the entry is no longer trusted for its 5 minutes
        wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 503, timeout=2.5, interval=0.05)
        assert not runtime().invalidation.is_trusted()
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 200, timeout=2, interval=0.05)


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


def test_a_bumped_redis_generation_clears_the_cache_within_a_second(redis_invalidation, http, auth, token_pair):
    wait_until(runtime().invalidation.is_trusted, timeout=3, interval=0.05)
    assert http.get("/v1/models", headers=auth).status_code == 200
    Token.objects.filter(id=token_pair[0].id).update(is_active=False)  # no database bump, no message
    redis_invalidation.client().incr(GENERATION_KEY)
    bumped = time.monotonic()
    wait_until(lambda: http.get("/v1/models", headers=auth).status_code == 401, timeout=1, interval=0.02)
    assert time.monotonic() - bumped < 1.0
