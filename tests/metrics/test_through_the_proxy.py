"""The counters move when real requests go through the proxy, and nothing secret is ever served."""

import httpx
import openai
import pytest

from tests.metrics.conftest import Scrape

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def served(proxy_server):
    def scrape() -> Scrape:
        return Scrape(httpx.get(proxy_server.url + "/metrics/prometheus").text)

    return scrape


def moved(before: Scrape, after: Scrape, name: str, **labels) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_requests_errors_and_latencies_are_counted_per_request(proxy_server, token_pair, served):
    client = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1], max_retries=0)
    before = served()
    client.chat.completions.create(**CHAT)
    proxy_server.upstream.reply("/v1/chat/completions", status=500, json_body={"error": {"message": "down"}})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**CHAT)
    after = served()
    assert moved(before, after, "llm_proxy_requests_total") == 2
    assert moved(before, after, "llm_proxy_requests_by_status_class_total", status_class="2xx") == 1
    assert moved(before, after, "llm_proxy_requests_by_status_class_total", status_class="5xx") == 1
    assert moved(before, after, "llm_proxy_errors_total") == 1
    assert moved(before, after, "llm_proxy_upstream_ttfb_seconds_count") == 2
    assert moved(before, after, "llm_proxy_overhead_seconds_count") == 2


def test_cache_stores_and_hits_are_counted(proxy_server, token_pair, served):
    headers = {"Authorization": f"Bearer {token_pair[1]}", "Cache-Control": "public, max-age=60"}
    before = served()
    for _ in range(2):
        response = httpx.post(proxy_server.url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status_code == 200
    after = served()
    assert moved(before, after, "llm_proxy_cache_stores_total") == 1
    assert moved(before, after, "llm_proxy_cache_hits_total") == 1
    assert moved(before, after, "llm_proxy_cache_misses_total") == 1


def test_no_token_or_provider_key_appears_in_any_metric(proxy_server, token_pair, project):
    client = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1], max_retries=0)
    client.chat.completions.create(**CHAT)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=proxy_server.url + "/v1", api_key="sk-not-a-valid-token-000000", max_retries=0
        ).models.list()
    for path in ("/metrics", "/metrics/prometheus"):
        text = httpx.get(proxy_server.url + path).text
        for secret in (token_pair[1], token_pair[1][3:], "sk-upstream-acme-key-1234567890", "sk-not-a-valid-token"):
            assert secret not in text, (path, secret)
