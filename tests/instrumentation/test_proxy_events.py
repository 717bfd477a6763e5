"""End to end: requests through the real proxy on a socket, events read back from a real Redis stream."""

import asyncio
import base64
import json
import time

import httpx
import openai
import pytest

from instrumentation.bus import reset_for_tests
from tests.support.fake_upstream import CHAT_COMPLETION, sse_chunks
from tests.support.redis_server import OwnRedis
from tests.support.waiting import wait_until

PROJECT_KEY = "sk-upstream-acme-key-1234567890"
EVENT_KEYS = [
    "LogID",
    "RequestID",
    "Method",
    "Path",
    "Status",
    "Duration",
    "ResponseHeaders",
    "ResponseBody",
    "RequestBody",
]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def stream_events(client, key: str, count: int, timeout: float = 5.0) -> list[dict]:
    """The events of the stream once it holds `count` entries (each entry checked to be one `data` field)."""
    wait_until(lambda: client.xlen(key) >= count, timeout=timeout, message=f"{count} entries in the stream {key}")
    entries = client.xrange(key)
    assert all(list(fields) == ["data"] for _id, fields in entries)
    return [json.loads(fields["data"]) for _id, fields in entries]


def body(event: dict, field: str) -> bytes:
    return base64.b64decode(event[field]) if event[field] is not None else b""


@pytest.fixture
def http(redis_bus, proxy_server, token_pair):
    """httpx on the proxy, with the bus on this test's Redis stream (set up before the server starts)."""
    with httpx.Client(base_url=proxy_server.url, timeout=10, headers={"Authorization": f"Bearer {token_pair[1]}"}) as c:
        yield c


def test_one_request_is_one_stream_entry_in_the_reference_schema(http, redis_client, stream_key, token_pair):
    client = openai.OpenAI(base_url=str(http.base_url) + "/v1", api_key=token_pair[1], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**CHAT)

    [event] = stream_events(redis_client, stream_key, 1)
    assert list(event) == EVENT_KEYS
    assert event["RequestID"] == raw.headers["X-Request-ID"]
    assert (event["LogID"], event["Method"], event["Path"], event["Status"]) == (0, "POST", "/v1/chat/completions", 200)
    assert isinstance(event["Duration"], int) and event["Duration"] > 0
    assert json.loads(body(event, "RequestBody")) == CHAT
    assert json.loads(body(event, "ResponseBody")) == CHAT_COMPLETION
    headers = event["ResponseHeaders"]
    assert headers["Content-Type"] == ["application/json; charset=utf-8"]
    assert headers["X-Request-Id"] == [raw.headers["X-Request-ID"]]
    assert headers["X-Proxy-First-Chunk-At"][0].endswith("Z")
    assert "X-Proxy-First-Chunk-At" not in raw.headers
    token, _ = token_pair
    assert headers["X-Proxy-Project-Id"] == [str(token.project_id)]
    assert headers["X-Proxy-Token-Id"] == [str(token.id)]
    assert "X-Proxy-Project-Id" not in raw.headers and "X-Proxy-Token-Id" not in raw.headers


def test_bodies_are_captured_at_exactly_the_caps_and_proxied_intact(http, redis_client, stream_key, proxy_server):
    big_answer = b'{"data":"' + b"a" * (300 * 1024) + b'"}'
    proxy_server.upstream.reply("/v1/echo", body=big_answer, headers={"Content-Type": "application/json"})
    big_request = b'{"input":"' + b"q" * (100 * 1024) + b'"}'

    response = http.post("/v1/echo", content=big_request, headers={"Content-Type": "application/json"})

    assert response.content == big_answer
    assert proxy_server.upstream.requests[-1].body == big_request
    [event] = stream_events(redis_client, stream_key, 1)
    assert body(event, "RequestBody") == big_request[:65536]
    assert body(event, "ResponseBody") == big_answer[:262144]


def test_a_stream_is_published_once_it_has_ended_with_the_text_sent(http, redis_client, stream_key, proxy_server):
    proxy_server.upstream.sse("/v1/chat/completions", sse_chunks(), delays=[0, 0.05, 0.05, 0, 0])
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        received = b"".join(response.iter_bytes())
        request_id = response.headers["X-Request-ID"]

    [event] = stream_events(redis_client, stream_key, 1)
    assert event["RequestID"] == request_id
    assert body(event, "ResponseBody") == received == "".join(sse_chunks()).encode()


def test_a_client_that_disconnects_mid_stream_still_produces_an_event(http, redis_client, stream_key, proxy_server):
    proxy_server.upstream.sse("/v1/chat/completions", sse_chunks(), delays=[0, 5, 0, 0, 0])
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        request_id = response.headers["X-Request-ID"]
        next(response.iter_bytes())  # the first event, then the client leaves

    [event] = stream_events(redis_client, stream_key, 1)
    assert event["RequestID"] == request_id
    assert body(event, "ResponseBody") == sse_chunks()[0].encode()
    assert proxy_server.upstream.disconnected.wait(5)


def test_local_errors_and_preflights_produce_events(http, redis_client, stream_key):
    unauthorized = http.get("/v1/models", headers={"Authorization": "Bearer sk-" + "A" * 22})
    preflight = http.options(
        "/v1/chat/completions",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )

    events = stream_events(redis_client, stream_key, 2)
    assert [(e["Method"], e["Status"]) for e in events] == [("GET", 401), ("OPTIONS", preflight.status_code)]
    assert events[0]["RequestID"] == unauthorized.headers["X-Request-ID"]
    assert unauthorized.json()["code"] == "token_not_found"
    assert events[0]["ResponseBody"] is None  # refused before any token was accepted: no bodies
    assert events[0]["ResponseHeaders"]["X-Proxy-Refused"] == ["token_not_found"]


def test_two_hundred_concurrent_requests_give_exactly_two_hundred_entries(http, redis_client, stream_key):
    async def fire() -> list[str]:
        async with httpx.AsyncClient(base_url=str(http.base_url), headers=http.headers, timeout=30) as client:
            responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(200)))
        assert {r.status_code for r in responses} == {200}
        return [r.headers["X-Request-ID"] for r in responses]

    request_ids = asyncio.run(fire())
    events = stream_events(redis_client, stream_key, 200, timeout=10)
    time.sleep(0.2)  # deliberate: the behaviour under test is that nothing more arrives in this time
    assert redis_client.xlen(stream_key) == 200
    assert sorted(e["RequestID"] for e in events) == sorted(request_ids)


def test_no_secret_enters_an_event(http, redis_client, stream_key, token_pair, proxy_server):
    proxy_server.upstream.reply(
        "/v1/chat/completions", json_body=CHAT_COMPLETION, headers={"Set-Cookie": "__cf_bm=upstream-cookie"}
    )
    http.post("/v1/chat/completions", json=CHAT, headers={"Cookie": "session=client-cookie"})
    http.get("/v1/models")
    http.get("/v1/models", headers={"Authorization": "Bearer sk-" + "B" * 22})

    events = stream_events(redis_client, stream_key, 3)
    for event in events:
        everything = json.dumps(event) + body(event, "RequestBody").decode() + body(event, "ResponseBody").decode()
        for secret in (token_pair[1], PROJECT_KEY, "Bearer", "upstream-cookie", "client-cookie", "sk-" + "B" * 22):
            assert secret not in everything
        assert not {"Authorization", "Cookie", "Set-Cookie"} & set(event["ResponseHeaders"])


@pytest.fixture
def own_redis(settings, stream_key):
    """The bus on a redis-server of this test's own (so it can be stopped), with a 10-event buffer."""
    server = OwnRedis().start()
    settings.LLM_PROXY_EVENT_BUS = "redis-streams"
    settings.REDIS_URL = server.url
    settings.REDIS_STREAM_KEY = stream_key
    settings.EVENT_PUBLISH_QUEUE_SIZE = 10
    reset_for_tests()
    yield server
    server.stop()
    reset_for_tests()


def test_requests_are_served_while_redis_is_down_and_publishing_resumes(
    own_redis, proxy_server, token_pair, stream_key
):
    auth = {"Authorization": f"Bearer {token_pair[1]}"}
    with httpx.Client(base_url=proxy_server.url, headers=auth, timeout=10) as http:

        def chat() -> httpx.Response:
            return http.post("/v1/chat/completions", json=CHAT)

        assert all(chat().status_code == 200 for _ in range(5))
        assert len(stream_events(own_redis.client(), stream_key, 5)) == 5
        dropped_before = http.get("/metrics").json()["events_dropped"]

        own_redis.stop()
        started = time.monotonic()
        assert all(chat().status_code == 200 for _ in range(30))
        assert time.monotonic() - started < 10  # served at full speed, not waiting on Redis
        dropped = http.get("/metrics").json()["events_dropped"] - dropped_before
        assert dropped >= 30 - 10 - 256  # beyond the buffer (and the batch being retried)
        assert dropped > 0

        own_redis.start()  # same port, empty (no persistence)
        held = stream_events(own_redis.client(), stream_key, 10, timeout=10)  # what waited in the buffer
        assert len(held) >= 10
        after = [chat().headers["X-Request-ID"] for _ in range(5)]
        events = stream_events(own_redis.client(), stream_key, len(held) + 5)
        assert [e["RequestID"] for e in events[len(held) :]] == after


@pytest.fixture
def file_event_log(settings, tmp_path):
    """FILE_EVENT_LOG on the in-memory bus, as `make run` has it."""
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    settings.FILE_EVENT_LOG = str(tmp_path / "data" / "events.jsonl")
    reset_for_tests()
    yield tmp_path / "data" / "events.jsonl"
    reset_for_tests()


def test_file_event_log_gets_one_line_per_request(file_event_log, proxy_server, token_pair):
    client = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**CHAT)
    stream = client.chat.completions.create(**CHAT, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from upstream"

    wait_until(lambda: file_event_log.exists() and len(file_event_log.read_text().splitlines()) >= 2,
               message="two lines in the file event log")  # fmt: skip
    plain, streamed = [json.loads(line) for line in file_event_log.read_text().splitlines()]
    assert plain["request_id"] == raw.headers["X-Request-ID"]
    assert json.loads(plain["request_body"]) == CHAT
    assert json.loads(plain["response_body"]) == CHAT_COMPLETION
    assert plain["response_headers"]["content_type"] == ["application/json; charset=utf-8"]
    assert json.loads(streamed["response_body"])["choices"][0]["message"]["content"] == "Hello from upstream"
    assert streamed["token_usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert token_pair[1] not in file_event_log.read_text() and PROJECT_KEY not in file_event_log.read_text()
