"""The usage dashboard in a real browser: after traffic through the proxy, drained by the `usage` service from the
Redis stream, its charts are drawn with the numbers (screenshots: test-artifacts/browser/<test>/)."""

import re

import httpx
import openai
import pytest
from playwright.sync_api import expect

from dispatch.runner import run_cycle
from tests.browser.conftest import admin_login
from tests.support.waiting import wait_until
from usage.models import UsageRollup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DASHBOARD = "/admin/usage/usagerollup/"

CHART_TOTAL = """id => {
  const chart = Chart.getChart(id);
  return chart.data.datasets.map(set => set.data.reduce((sum, value) => sum + (value || 0), 0));
}"""
# Pixels of the canvas painted in the "Requests" bar colour (#417690): the chart really drew bars.
BAR_PIXELS = """id => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 0x41) < 6 && Math.abs(data[i + 1] - 0x76) < 6 && Math.abs(data[i + 2] - 0x90) < 6) count++;
  }
  return count;
}"""


def wait_for_stream(client, key: str, count: int, timeout: float = 10.0) -> None:
    wait_until(lambda: client.xlen(key) >= count, timeout=timeout, interval=0.05,
               message=lambda: f"{count} events on the stream (only {client.xlen(key)} arrived)")  # fmt: skip


def send_traffic(base_url: str, secret: str) -> None:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=secret, max_retries=0, timeout=10)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Hello from upstream"
    refused = httpx.get(base_url + "/v1/models", headers={"Authorization": "Bearer sk-" + "A" * 22})
    assert refused.status_code == 401


def test_the_dashboard_draws_charts_with_real_numbers_after_traffic(
    redis_events, page, steps, proxy_server, admin_user, token_pair
):
    redis_client, stream_key = redis_events
    send_traffic(proxy_server.url, token_pair[1])
    wait_for_stream(redis_client, stream_key, 5)
    assert run_cycle("usage", seconds=5) == 5  # the Celery task's drain cycle, run here
    totals = UsageRollup.objects.values_list("requests", "errors", "prompt_tokens", "completion_tokens")
    assert [sum(column) for column in zip(*totals, strict=True)] == [5, 1, 36, 12]

    admin_login(page)
    page.get_by_role("link", name="Usage", exact=True).first.click()
    page.wait_for_url(f"**{DASHBOARD}")
    expect(page.locator("#usage-dashboard")).to_have_attribute("data-charts-ready", "true")
    expect(page.locator("#total-requests .value")).to_have_text("5")
    expect(page.locator("#total-errors .value")).to_have_text("1")
    expect(page.locator("#total-prompt-tokens .value")).to_have_text("36")
    requests, errors, _cache_hits = page.evaluate(CHART_TOTAL, "chart-requests")
    assert (requests, errors) == (5, 1)
    assert page.evaluate(CHART_TOTAL, "chart-tokens") == [36, 12]
    assert page.evaluate(BAR_PIXELS, "chart-requests") > 20
    p50, p95 = page.evaluate(CHART_TOTAL, "chart-latency")
    assert p50 > 0 and p95 >= p50
    # Per project and per token: the four answered requests are Acme's and its token's; the refused one
    # (an unknown token) belongs to no project.
    acme = page.locator(f'#usage-projects tr[data-project-id="{token_pair[0].project_id}"] td')
    expect(acme).to_have_text(["Acme", "4", "0", "36", "12", "0", re.compile(r".+"), re.compile(r".+")])
    expect(page.locator('#usage-projects tr[data-project-id=""] td').nth(1)).to_have_text("1")
    token_cells = page.locator(f'#usage-tokens tr[data-token-id="{token_pair[0].id}"] td')
    expect(token_cells.nth(1)).to_have_text("Acme")
    expect(token_cells.nth(2)).to_have_text("4")
    steps.shot("usage-24h")

    page.click("#window-30d")
    expect(page.locator("#window-30d")).to_have_class("selected")
    expect(page.locator("#usage-dashboard")).to_have_attribute("data-charts-ready", "true")
    assert page.evaluate(CHART_TOTAL, "chart-requests")[:2] == [5, 1]
    assert page.evaluate(BAR_PIXELS, "chart-requests") > 5
    steps.shot("usage-30d")
