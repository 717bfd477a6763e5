"""The lookup and store steps on Django requests and scripted upstream answers, on both backends.

The end-to-end tests (test_proxy_cache.py) go through the real proxy; these pin the decisions themselves.
"""

import pytest
from django.test import RequestFactory

from instrumentation import metrics
from llmproxy.proxy import cache

factory = RequestFactory()
PROJECT = "3f1c2a4e-0000-4000-8000-000000000001"
OTHER_PROJECT = "3f1c2a4e-0000-4000-8000-000000000002"
JSON = {"Content-Type": "application/json"}


async def chunks(*parts: bytes):
    for part in parts:
        yield part


def answer(status=200, headers=None, body=b'{"answer":1}', parts=None) -> cache.UpstreamAnswer:
    return cache.UpstreamAnswer(status, list({**JSON, **(headers or {})}.items()), chunks(*(parts or [body])))


async def read(body) -> bytes:
    return b"".join([chunk async for chunk in body])


async def fetch(request, upstream: cache.UpstreamAnswer, project=PROJECT):
    """What the view does: look up; on a miss relay the upstream answer through the store step."""
    lookup = await cache.alookup(request, project_id=project)
    if lookup.response is not None:
        return lookup, lookup.response.status_code, dict(lookup.response.headers), lookup.response.content
    relayed = await cache.astore(lookup, upstream)
    return lookup, relayed.status, {**dict(relayed.headers), **relayed.extra}, await read(relayed.body)


def get(path="/v1/models", **headers):
    return factory.get(path, **{"HTTP_" + k.upper(): v for k, v in headers.items()})


def post(body=b'{"model":"gpt-4o-mini"}', cache_control="public, max-age=60", **headers):
    extra = {"HTTP_" + k.upper(): v for k, v in headers.items()}
    if cache_control:
        extra["HTTP_CACHE_CONTROL"] = cache_control
    return factory.post("/v1/chat/completions", data=body, content_type="application/json", **extra)


PUBLIC = {"Cache-Control": "public, max-age=60"}


async def test_a_public_answer_is_stored_then_served(cache_backend_name):
    _, _, first, _ = await fetch(get(), answer(headers=PUBLIC))
    assert first["X-PROXY-CACHE"] == "stored" and first["Cache-Status"] == "llm-proxy; stored"
    _, status, second, body = await fetch(get(), answer(body=b"not this"))
    assert (status, body) == (200, b'{"answer":1}')
    assert second["X-PROXY-CACHE"] == "hit" and second["Cache-Status"] == "llm-proxy; hit"
    assert second["X-PROXY-CACHE-KEY"] == first["X-PROXY-CACHE-KEY"]
    assert second["Content-Type"] == "application/json" and second["Content-Length"] == "12"


async def test_another_project_does_not_see_the_entry(cache_backend_name):
    await fetch(get(), answer(headers=PUBLIC))
    _, _, headers, body = await fetch(get(), answer(headers=PUBLIC, body=b"fresh"), project=OTHER_PROJECT)
    assert body == b"fresh" and headers["X-PROXY-CACHE"] == "stored"


async def test_a_hit_replays_no_stored_request_id_or_cors_headers(cache_backend_name):
    stale = {"X-Request-ID": "first-request", "Access-Control-Allow-Origin": "https://first.example"}
    await fetch(get(), answer(headers={**PUBLIC, **stale}))
    _, _, headers, _ = await fetch(get(), answer())
    assert headers["X-PROXY-CACHE"] == "hit"
    assert "X-Request-ID" not in headers and "Access-Control-Allow-Origin" not in headers  # the view adds fresh ones


async def test_private_and_no_store_answers_are_not_stored(cache_backend_name):
    for directive in ("private, max-age=60", "no-store"):
        _, _, headers, _ = await fetch(
            get(Cache_Control="public, max-age=60"), answer(headers={"Cache-Control": directive})
        )
        assert headers["X-PROXY-CACHE"] == "miss"
        _, _, headers, body = await fetch(get(), answer(body=b"again"))
        assert body == b"again"


async def test_an_answer_without_cache_control_is_stored_when_the_client_forces_a_ttl(cache_backend_name):
    _, _, headers, _ = await fetch(get(Cache_Control="public, max-age=30"), answer())
    assert headers["X-PROXY-CACHE"] == "stored"
    _, _, headers, _ = await fetch(get(), answer(body=b"x"))
    assert headers["X-PROXY-CACHE"] == "hit" and headers["Cache-Control"] == "public, max-age=30"


async def test_the_default_ttl_applies_to_a_bare_public_answer(cache_backend_name, settings):
    settings.HTTP_CACHE_DEFAULT_TTL = 60
    _, _, headers, _ = await fetch(get(), answer(headers={"Cache-Control": "public"}))
    assert headers["X-PROXY-CACHE"] == "stored"
    settings.HTTP_CACHE_DEFAULT_TTL = 0
    _, _, headers, _ = await fetch(get("/v1/models?x=1"), answer(headers={"Cache-Control": "public"}))
    assert headers["X-PROXY-CACHE"] == "miss" and headers["X-CACHE-DEBUG"] == "ttl-zero"


async def test_bodies_over_the_object_limit_are_relayed_whole_but_not_stored(cache_backend_name, settings):
    settings.HTTP_CACHE_MAX_OBJECT_BYTES = 10
    _, _, headers, body = await fetch(get(), answer(headers=PUBLIC, parts=[b"0123456789", b"abcdef", b"!"]))
    assert body == b"0123456789abcdef!" and headers["X-CACHE-DEBUG"] == "too-large"
    _, _, headers, _ = await fetch(get(), answer(headers={**PUBLIC, "Content-Length": "11"}, body=b"01234567890"))
    assert headers["X-CACHE-DEBUG"] == "too-large"


async def test_server_errors_are_never_stored(cache_backend_name):
    _, _, headers, _ = await fetch(get(Cache_Control="public, max-age=60"), answer(status=503, headers=PUBLIC))
    assert headers["X-CACHE-DEBUG"] == "status-not-cacheable"
    _, status, _, _ = await fetch(get(), answer(status=200, body=b"ok"))
    assert status == 200


async def test_accept_headers_select_different_entries(cache_backend_name):
    await fetch(get(Accept="application/json"), answer(headers=PUBLIC, body=b"json"))
    _, _, headers, body = await fetch(get(Accept="text/plain"), answer(headers=PUBLIC, body=b"text"))
    assert body == b"text" and headers["X-PROXY-CACHE"] == "stored"
    _, _, headers, body = await fetch(get(Accept="application/json"), answer())
    assert body == b"json" and headers["X-PROXY-CACHE"] == "hit"


async def test_vary_separates_requests_by_the_varied_header(cache_backend_name):
    vary = {**PUBLIC, "Vary": "X-Flavour"}
    await fetch(get(X_Flavour="sweet"), answer(headers=vary, body=b"sweet"))
    _, _, headers, body = await fetch(get(X_Flavour="sour"), answer(headers=vary, body=b"sour"))
    assert body == b"sour" and headers["X-PROXY-CACHE"] == "stored"
    _, _, headers, body = await fetch(get(X_Flavour="sour"), answer())
    assert body == b"sour" and headers["X-PROXY-CACHE"] == "hit"


async def test_a_matching_etag_gets_304_conditional_hit(cache_backend_name):
    await fetch(get(), answer(headers={**PUBLIC, "ETag": '"v1"'}))
    _, status, headers, body = await fetch(get(If_None_Match='"v1"'), answer())
    assert (status, body, headers["X-PROXY-CACHE"]) == (304, b"", "conditional-hit")
    assert headers["Cache-Status"] == "llm-proxy; conditional-hit" and headers["ETag"] == '"v1"'
    _, status, _, _ = await fetch(get(If_None_Match='"v0"'), answer())
    assert status == 200


async def test_last_modified_answers_if_modified_since(cache_backend_name):
    await fetch(get(), answer(headers={**PUBLIC, "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    _, status, _, _ = await fetch(get(If_Modified_Since="Wed, 21 Oct 2015 07:28:00 GMT"), answer())
    assert status == 304


async def test_no_cache_revalidates_upstream_and_a_304_refreshes_the_entry(cache_backend_name):
    await fetch(get(), answer(headers={**PUBLIC, "ETag": '"v1"'}, body=b"cached"))
    request = get(Cache_Control="no-cache")
    lookup = await cache.alookup(request, project_id=PROJECT)
    assert lookup.response is None and lookup.upstream_headers == {"If-None-Match": '"v1"'}
    relayed = await cache.astore(lookup, answer(status=304, headers={"ETag": '"v1"', **PUBLIC}, body=b""))
    headers = {**dict(relayed.headers), **relayed.extra}
    assert relayed.status == 200 and await read(relayed.body) == b"cached"
    assert headers["X-PROXY-CACHE"] == "stored" and headers["X-CACHE-DEBUG"] == "revalidated"


async def test_max_age_zero_with_a_changed_answer_replaces_the_entry(cache_backend_name):
    await fetch(get(), answer(headers={**PUBLIC, "ETag": '"v1"'}, body=b"old"))
    _, _, headers, body = await fetch(
        get(Cache_Control="max-age=0"), answer(headers={**PUBLIC, "ETag": '"v2"'}, body=b"new")
    )
    assert body == b"new" and headers["X-PROXY-CACHE"] == "stored"
    _, _, _, body = await fetch(get(), answer())
    assert body == b"new"


async def test_head_is_answered_from_the_get_entry(cache_backend_name):
    await fetch(get(), answer(headers=PUBLIC, body=b"abc"))
    _, status, headers, body = await fetch(factory.head("/v1/models"), answer(body=b""))
    assert (status, body, headers["X-PROXY-CACHE"], headers["Content-Length"]) == (200, b"", "hit", "3")


async def test_a_head_answer_is_never_stored_under_the_get_key(cache_backend_name):
    _, _, headers, _ = await fetch(factory.head("/v1/models"), answer(headers=PUBLIC, body=b""))
    assert headers["X-PROXY-CACHE"] == "miss" and headers["X-CACHE-DEBUG"] == "head-not-stored"
    _, _, headers, body = await fetch(get(), answer(headers=PUBLIC, body=b"full"))
    assert headers["X-PROXY-CACHE"] == "stored" and body == b"full"


async def test_post_is_looked_up_only_with_opt_in_and_by_body_hash(cache_backend_name):
    lookup, _, headers, _ = await fetch(post(), answer())
    assert headers["X-PROXY-CACHE"] == "stored" and "X-Body-Hash" in lookup.upstream_headers
    assert headers["X-PROXY-CACHE-KEY"].endswith("|body=" + lookup.upstream_headers["X-Body-Hash"] + "|ttl=max=60")
    _, _, headers, _ = await fetch(post(), answer())
    assert headers["X-PROXY-CACHE"] == "hit"
    _, _, headers, _ = await fetch(post(body=b'{"model":"other"}'), answer())
    assert headers["X-PROXY-CACHE"] == "stored"
    lookup, _, headers, _ = await fetch(post(cache_control=""), answer(headers=PUBLIC))
    assert headers["X-PROXY-CACHE"] == "miss" and not lookup.key and not lookup.upstream_headers


SSE = {"Content-Type": "text/event-stream"}


async def test_streams_are_not_stored_unless_stream_caching_is_on(cache_backend_name, settings):
    settings.HTTP_CACHE_STREAM_RESPONSES = False
    _, _, headers, _ = await fetch(post(), answer(headers=SSE, parts=[b"data: 1\n\n", b"data: [DONE]\n\n"]))
    assert headers["X-PROXY-CACHE"] == "miss"
    _, _, headers, _ = await fetch(post(), answer(headers=SSE, parts=[b"data: 2\n\n"]))
    assert headers["X-PROXY-CACHE"] == "miss"


async def test_a_completed_stream_is_stored_when_stream_caching_is_on(cache_backend_name, settings):
    settings.HTTP_CACHE_STREAM_RESPONSES = True
    _, _, headers, body = await fetch(post(), answer(headers=SSE, parts=[b"data: 1\n\n", b"data: [DONE]\n\n"]))
    assert headers["X-CACHE-DEBUG"] == "streaming-response" and body == b"data: 1\n\ndata: [DONE]\n\n"
    _, _, headers, body = await fetch(post(), answer())
    assert headers["X-PROXY-CACHE"] == "hit" and body == b"data: 1\n\ndata: [DONE]\n\n"
    assert headers["Content-Type"] == "text/event-stream"


async def test_an_interrupted_or_oversized_stream_is_not_stored(cache_backend_name, settings):
    settings.HTTP_CACHE_STREAM_RESPONSES = True

    async def broken():
        yield b"data: 1\n\n"
        raise ConnectionError("upstream went away")

    lookup = await cache.alookup(post(), project_id=PROJECT)
    relayed = await cache.astore(lookup, cache.UpstreamAnswer(200, list(SSE.items()), broken()))
    with pytest.raises(ConnectionError):
        await read(relayed.body)
    settings.HTTP_CACHE_MAX_OBJECT_BYTES = 12
    _, _, _, body = await fetch(post(), answer(headers=SSE, parts=[b"data: 1\n\n", b"data: [DONE]\n\n"]))
    assert body == b"data: 1\n\ndata: [DONE]\n\n"  # relayed whole, not stored truncated
    _, _, headers, body = await fetch(post(), answer(body=b"fresh"))
    assert body == b"fresh" and headers["X-PROXY-CACHE"] != "hit"


async def test_a_disabled_cache_does_nothing(cache_backend_name, settings):
    settings.HTTP_CACHE_ENABLED = False
    lookup, _, headers, _ = await fetch(get(Cache_Control="public, max-age=60"), answer(headers=PUBLIC))
    assert not lookup.enabled and "X-PROXY-CACHE" not in headers and "Cache-Status" not in headers


async def test_counters_follow_the_outcomes(cache_backend_name):
    before = metrics.snapshot()
    await fetch(get(), answer(headers=PUBLIC))
    await fetch(get(), answer())
    after = metrics.snapshot()
    for name in ("cache_misses", "cache_stores", "cache_hits"):
        assert after.get(name, 0) - before.get(name, 0) == 1, name
