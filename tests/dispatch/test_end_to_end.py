"""Requests through the real proxy, events over the real Redis stream, delivered to the fake services."""

import openai
import pytest

from dispatch.runner import build_drainer
from instrumentation.bus import reset_for_tests
from tests.support.fake_services import HELICONE_KEY, LUNARY_KEY
from tests.support.waiting import wait_until

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def proxy_bus(stream):
    reset_for_tests()  # the proxy's publisher follows the stream fixture's settings
    yield stream
    reset_for_tests()


def test_proxied_completions_reach_lunary_and_helicone_complete(
    proxy_bus, proxy_server, token_pair, fake_lunary, fake_helicone
):
    client = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1], max_retries=0)
    plain = client.chat.completions.with_raw_response.create(**CHAT)
    with client.chat.completions.with_streaming_response.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    ) as streamed:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed.parse() if chunk.choices)
    assert text == "Hello from upstream"
    wait_until(lambda: proxy_bus.redis.xlen(proxy_bus.key) >= 2, message="both events on the stream")

    build_drainer("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY).run(until_idle=True)
    build_drainer("helicone", endpoint=f"{fake_helicone.url}/oai/v1/log", api_key=HELICONE_KEY).run(until_idle=True)

    runs = list(fake_lunary.runs.values())
    assert [r["status"] for r in runs] == ["success", "success"]
    assert [r["output"]["content"] for r in runs] == ["Hello from upstream"] * 2
    assert all((r["promptTokens"], r["completionTokens"]) == (9, 3) for r in runs)
    assert runs[0]["metadata"]["requestId"] == plain.headers["X-Request-ID"]
    logs = fake_helicone.logs
    assert [log["isStream"] for log in logs] == [False, True]
    assert all(log["usage"]["completion_tokens"] == 3 for log in logs)
    assert isinstance(logs[1]["ttft"], int)
    assert fake_lunary.violations == [] and fake_helicone.violations == []
