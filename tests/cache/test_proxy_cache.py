"""The response cache end to end (the reference's HTTP cache): real proxy, real socket, fake upstream, both backends."""

import hashlib
import json
import socket

import openai
import pytest
from aiohttp import web

from instrumentation.bus import get_bus
from llmproxy.proxy.cache_backends import scoped_key
from llmproxy.proxy.state import runtime
from projects.services import project_create
from tests.conftest import MANAGEMENT_TOKEN
from tests.support.fake_upstream import MODELS
from tests.support.waiting import wait_until
from tokens.models import Token
from tokens.services import token_create, token_update

# Every caching rule runs on both backends; behaviour around the cache (tokens, quota, events) on one.
both_backends = pytest.mark.usefixtures("cache_backend_name")
one_backend = pytest.mark.usefixtures("memory_cache")

PUBLIC = {"Cache-Control": "public, max-age=60"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def upstream_calls(proxy_server, path="/v1/models") -> int:
    return sum(1 for r in proxy_server.upstream.requests if r.path == path)


def public_models(proxy_server, **headers):
    proxy_server.upstream.reply("/v1/models", method="GET", json_body=MODELS, headers={**PUBLIC, **headers})


def sdk(proxy_server, secret, **headers):
    return openai.OpenAI(
        base_url=proxy_server.url + "/v1", api_key=secret, max_retries=0, timeout=10, default_headers=headers
    )


@both_backends
def test_a_public_answer_is_stored_then_served_with_fresh_request_id_and_cors(proxy_server, http, auth):
    public_models(proxy_server, **{"X-Request-ID": "upstream-id"})
    first = http.get("/v1/models", headers={**auth, "Origin": "https://one.example"})
    second = http.get("/v1/models", headers={**auth, "Origin": "https://two.example"})
    assert first.headers["X-PROXY-CACHE"] == "stored" and first.headers["Cache-Status"] == "llm-proxy; stored"
    assert second.headers["X-PROXY-CACHE"] == "hit" and second.headers["Cache-Status"] == "llm-proxy; hit"
    assert second.json() == MODELS and upstream_calls(proxy_server) == 1
    assert second.headers["X-PROXY-CACHE-KEY"] == first.headers["X-PROXY-CACHE-KEY"]
    assert second.headers["X-Request-ID"] not in (first.headers["X-Request-ID"], "upstream-id")
    assert second.headers["Access-Control-Allow-Origin"] == "https://two.example"
    assert second.headers["Vary"] == "Origin"


@one_backend
def test_the_same_request_with_another_projects_token_is_a_miss(proxy_server, http, auth):
    public_models(proxy_server)
    http.get("/v1/models", headers=auth)
    other = project_create(name="Other", api_key="sk-upstream-other-key-1234567890")
    _, secret = token_create(project=other, duration_minutes=60)
    response = http.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert response.headers["X-PROXY-CACHE"] == "stored" and upstream_calls(proxy_server) == 2


@both_backends
def test_a_post_is_stored_when_the_client_opts_in_and_keyed_by_its_body(proxy_server, token_pair):
    client = sdk(proxy_server, token_pair[1], **{"Cache-Control": "public, max-age=60"})
    first = client.chat.completions.with_raw_response.create(**CHAT)
    second = client.chat.completions.with_raw_response.create(**CHAT)
    assert first.headers["X-PROXY-CACHE"] == "stored" and second.headers["X-PROXY-CACHE"] == "hit"
    assert second.parse().choices[0].message.content == "Hello from upstream"
    sent = proxy_server.upstream.requests[0]
    assert {k.lower(): v for k, v in sent.headers.items()}["x-body-hash"] == hashlib.sha256(sent.body).hexdigest()
    other = client.chat.completions.with_raw_response.create(
        **{**CHAT, "messages": [{"role": "user", "content": "Yo"}]}
    )
    assert other.headers["X-PROXY-CACHE"] == "stored" and upstream_calls(proxy_server, "/v1/chat/completions") == 2


@one_backend
def test_a_post_without_opt_in_is_never_served_from_cache(proxy_server, token_pair):
    client = sdk(proxy_server, token_pair[1])
    for _ in range(2):
        assert client.chat.completions.with_raw_response.create(**CHAT).headers["X-PROXY-CACHE"] == "miss"
    assert "x-body-hash" not in {k.lower() for k in proxy_server.upstream.requests[0].headers}


@both_backends
def test_private_and_no_store_answers_are_not_stored_even_when_the_client_forces_a_ttl(proxy_server, http, auth):
    for directive in ("private, max-age=60", "no-store"):
        proxy_server.upstream.reply("/v1/models", method="GET", json_body=MODELS, headers={"Cache-Control": directive})
        for _ in range(2):
            response = http.get("/v1/models", headers={**auth, **PUBLIC})
            assert response.headers["X-PROXY-CACHE"] == "miss"
    assert upstream_calls(proxy_server) == 4


@both_backends
def test_vary_keeps_one_entry_per_value_of_the_varied_header(proxy_server, http, auth):
    public_models(proxy_server, Vary="X-Flavour")
    seen = [http.get("/v1/models", headers={**auth, "X-Flavour": f}).headers["X-PROXY-CACHE"] for f in "aab"]
    assert seen == ["stored", "hit", "stored"]
    assert http.get("/v1/models", headers={**auth, "X-Flavour": "b"}).headers["X-PROXY-CACHE"] == "hit"


@both_backends
def test_accept_headers_are_part_of_the_key(proxy_server, http, auth):
    public_models(proxy_server)
    for accept, expected in [("application/json", "stored"), ("text/plain", "stored"), ("application/json", "hit")]:
        assert http.get("/v1/models", headers={**auth, "Accept": accept}).headers["X-PROXY-CACHE"] == expected


@both_backends
def test_a_matching_etag_gets_a_304_conditional_hit(proxy_server, http, auth):
    public_models(proxy_server, ETag='"v1"')
    http.get("/v1/models", headers=auth)
    response = http.get("/v1/models", headers={**auth, "If-None-Match": '"v1"'})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["X-PROXY-CACHE"] == "conditional-hit"
    assert response.headers["Cache-Status"] == "llm-proxy; conditional-hit"
    assert http.get("/v1/models", headers={**auth, "If-None-Match": '"v0"'}).status_code == 200
    assert upstream_calls(proxy_server) == 1


@both_backends
def test_no_cache_revalidates_with_the_upstream_and_serves_the_confirmed_entry(proxy_server, http, auth):
    async def handler(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"', **PUBLIC})
        return web.json_response(MODELS, headers={"ETag": '"v1"', **PUBLIC})

    proxy_server.upstream.route("GET", "/v1/models", handler)
    http.get("/v1/models", headers=auth)
    response = http.get("/v1/models", headers={**auth, "Cache-Control": "no-cache"})
    assert response.status_code == 200 and response.json() == MODELS
    assert {k.lower(): v for k, v in proxy_server.upstream.requests[-1].headers.items()}["if-none-match"] == '"v1"'
    assert response.headers["X-CACHE-DEBUG"] == "revalidated"
    assert http.get("/v1/models", headers=auth).headers["X-PROXY-CACHE"] == "hit"


@both_backends
def test_max_age_zero_fetches_a_changed_answer_and_replaces_the_entry(proxy_server, http, auth):
    public_models(proxy_server, ETag='"v1"')
    http.get("/v1/models", headers=auth)
    proxy_server.upstream.reply("/v1/models", method="GET", json_body={"v": 2}, headers={**PUBLIC, "ETag": '"v2"'})
    response = http.get("/v1/models", headers={**auth, "Cache-Control": "max-age=0"})
    assert response.json() == {"v": 2} and response.headers["X-PROXY-CACHE"] == "stored"
    assert http.get("/v1/models", headers=auth).json() == {"v": 2}


@both_backends
def test_head_is_answered_from_the_get_entry(proxy_server, http, auth):
    proxy_server.configure(allowed_methods=["GET", "HEAD", "POST", "OPTIONS"])
    public_models(proxy_server)
    body = http.get("/v1/models", headers=auth).content
    response = http.head("/v1/models", headers=auth)
    assert response.status_code == 200 and response.headers["X-PROXY-CACHE"] == "hit"
    assert response.headers["Content-Length"] == str(len(body)) and upstream_calls(proxy_server) == 1


@both_backends
def test_server_errors_are_never_stored(proxy_server, http, auth):
    proxy_server.upstream.reply("/v1/models", method="GET", status=503, json_body={"error": "busy"}, headers=PUBLIC)
    for _ in range(2):
        response = http.get("/v1/models", headers={**auth, **PUBLIC})
        assert response.status_code == 503 and response.headers["X-CACHE-DEBUG"] == "status-not-cacheable"
    assert upstream_calls(proxy_server) == 2


@both_backends
@pytest.mark.parametrize("stream_caching", [False, True])
def test_streams_are_cached_only_with_stream_caching(proxy_server, token_pair, settings, stream_caching):
    settings.HTTP_CACHE_STREAM_RESPONSES = stream_caching
    client = sdk(proxy_server, token_pair[1], **{"Cache-Control": "public, max-age=60"})
    texts = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(**CHAT, stream=True)
        chunks = list(raw.parse())
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        if stream_caching:  # the SDK closes the connection at `data: [DONE]`: the entry was written before it
            assert entry(proxy_server, token_pair[0].project_id, raw.headers["X-PROXY-CACHE-KEY"]) is not None
    assert texts == ["Hello from upstream"] * 2
    assert upstream_calls(proxy_server, "/v1/chat/completions") == (1 if stream_caching else 2)


def entry(proxy_server, project_id, key: str):
    return proxy_server.live.run_in_loop(runtime().cache.get().aget(scoped_key(str(project_id), key)))


def purge(http, body: dict):
    return http.post("/manage/cache/purge", json=body, headers={"Authorization": f"Bearer {MANAGEMENT_TOKEN}"})


@both_backends
def test_exact_and_prefix_purges_empty_the_cache(proxy_server, http, auth):
    public_models(proxy_server)
    http.get("/v1/models", headers=auth)
    assert purge(http, {"method": "GET", "url": "/v1/models"}).json() == {"deleted": True}
    key = http.get("/v1/models", headers=auth).headers["X-PROXY-CACHE-KEY"]  # stored again
    assert purge(http, {"method": "GET", "url": "/v1/models", "prefix": key[:10]}).json() == {"deleted": 1}
    assert http.get("/v1/models", headers=auth).headers["X-PROXY-CACHE"] == "stored"


@one_backend
def test_a_disabled_cache_stores_nothing_and_adds_no_headers(proxy_server, http, auth, settings):
    settings.HTTP_CACHE_ENABLED = False
    public_models(proxy_server)
    for _ in range(2):
        response = http.get("/v1/models", headers=auth)
        assert "X-PROXY-CACHE" not in response.headers and "Cache-Status" not in response.headers
    assert upstream_calls(proxy_server) == 2
    response = purge(http, {"method": "GET", "url": "/v1/models"})
    assert (response.status_code, response.json()) == (400, {"error": "caching is disabled"})


@one_backend
def test_hits_use_no_quota_and_are_counted_as_cache_hits(proxy_server, http, project):
    token, secret = token_create(project=project, duration_minutes=5, max_requests=2)
    headers = {"Authorization": f"Bearer {secret}"}
    public_models(proxy_server)
    statuses = [http.get("/v1/models", headers=headers).headers["X-PROXY-CACHE"] for _ in range(4)]
    assert statuses == ["stored", "hit", "hit", "hit"]
    assert http.get("/v1/models?fresh=1", headers=headers).status_code == 200  # the second counted request
    proxy_server.live.run_in_loop(runtime().usage.aflush())
    wait_until(  # a batch the background flush took just before may still be in flight
        lambda: Token.objects.get(id=token.id).cache_hit_count >= 3, interval=0.05, message="3 cache hits counted"
    )
    stored = Token.objects.get(id=token.id)
    assert (stored.request_count, stored.cache_hit_count) == (2, 3)


class Collected(list):
    """The events the bus hands its subscribers (list.append is atomic: no lock needed)."""

    def __call__(self, event) -> None:
        self.append(event)


@one_backend
def test_hits_publish_no_event(proxy_server, http, auth):
    events = Collected()
    get_bus().subscribe(events)
    public_models(proxy_server, ETag='"v1"')
    responses = [
        http.get("/v1/models", headers=auth),  # stored
        http.get("/v1/models", headers=auth),  # hit
        http.get("/v1/models", headers={**auth, "If-None-Match": '"v1"'}),  # conditional hit
        http.get("/v1/models?after=1", headers=auth),  # a miss, published after anything the hits published
    ]
    ids = [r.headers["X-Request-ID"] for r in responses]
    wait_until(lambda: ids[3] in {e.request_id for e in events}, message="the miss's event")
    published = {e.request_id for e in events}
    assert ids[0] in published and ids[3] in published
    assert ids[1] not in published and ids[2] not in published


@one_backend
def test_a_revoked_token_gets_401_even_for_a_cached_answer(proxy_server, http, auth, token_pair):
    public_models(proxy_server)
    http.get("/v1/models", headers=auth)
    token_update(token=token_pair[0], is_active=False)
    response = http.get("/v1/models", headers=auth)
    assert response.status_code == 401 and json.loads(response.content)["code"] == "token_inactive"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_redis_cache_only_means_misses(proxy_server, http, auth, settings):
    settings.HTTP_CACHE_BACKEND = "redis"
    settings.REDIS_CACHE_URL = f"redis://127.0.0.1:{free_port()}/0"
    public_models(proxy_server)
    for _ in range(2):
        response = http.get("/v1/models", headers=auth)
        assert response.status_code == 200 and response.headers["X-PROXY-CACHE"] == "miss"
    assert upstream_calls(proxy_server) == 2
