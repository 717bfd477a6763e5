"""`manage.py benchmark` against the fake upstream (directly, and through the real proxy)."""

import asyncio
import json
import re
import socket
import time
from io import StringIO

import pytest
from aiohttp import web
from django.core.management import CommandError, call_command

TOKEN = "sk-benchmark-secret-token-0123456789"
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "test"}]})


def benchmark(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("benchmark", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def rows(table: str) -> dict[str, str]:
    """`| Label | value |` rows of the table, by label."""
    found = {}
    for line in table.splitlines():
        match = re.match(r"^\| (.+?)\s+\| (.+?)\s+\|$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def seconds(text: str) -> float:
    value, unit = re.match(r"^([\d.]+)(ns|µs|ms|s)?$", text).groups()
    return float(value) * {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1, None: 0}[unit]


def every_third_fails(upstream):
    seen = []

    async def handler(request):
        seen.append(1)
        if len(seen) % 3 == 0:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        return web.json_response({"ok": True})

    upstream.route("POST", "/v1/chat/completions", handler)


def test_the_table_counts_successes_failures_and_each_status(fake_upstream):
    every_third_fails(fake_upstream)
    out, err = benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/chat/completions", "--token", TOKEN,
        "-r", "9", "-c", "3", "--json", CHAT,
    )  # fmt: skip
    table = rows(out)
    assert table["Total requests"] == "9" and table["Concurrency"] == "3"
    assert (table["Success"], table["Failed"]) == ("6", "3")
    assert (table["200"], table["503"]) == ("6", "3")
    assert float(table["Requests/sec"]) > 0 and float(table["Duration (s)"]) >= 0
    for label in ("Avg latency", "Min latency", "Max latency", "p50 latency", "p90 latency", "p99 latency"):
        assert seconds(table[label]) > 0, label
    assert seconds(table["Min latency"]) <= seconds(table["p50 latency"]) <= seconds(table["Max latency"])
    assert table["p90 mean latency"]
    assert table["Upstream latency"] == "N/A"  # a bare upstream sends no proxy timing headers
    assert "9/9 completed, 3 failed" in err  # the progress bar
    assert "Cache hits" not in table


def test_each_request_carries_the_reference_headers(fake_upstream):
    before = time.time_ns()
    benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/chat/completions", "--token", TOKEN,
        "-r", "2", "--json", CHAT, "--cache", "--cache-ttl", "120",
    )  # fmt: skip
    assert len(fake_upstream.requests) == 2
    for request in fake_upstream.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Cache-Control"] == "public, max-age=120"
        assert before <= int(request.headers["X-REQUEST-START"]) <= time.time_ns()
        assert request.json()["model"] == "gpt-4o-mini"


def test_cache_without_a_ttl_asks_for_a_day_and_get_sends_no_body(fake_upstream):
    benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/models", "--token", TOKEN, "--method", "get",
        "--json", CHAT, "--cache",
    )  # fmt: skip
    (request,) = fake_upstream.requests
    assert request.method == "GET" and request.body == b"" and "Content-Type" not in request.headers
    assert request.headers["Cache-Control"] == "public, max-age=86400"


def test_upstream_and_proxy_latency_come_from_the_proxys_timing_headers(fake_upstream):
    async def handler(request):  # what the proxy reports: 50 ms spent upstream
        start = time.time_ns()
        await asyncio.sleep(0.05)
        headers = {"X-UPSTREAM-REQUEST-START": str(start), "X-UPSTREAM-REQUEST-STOP": str(time.time_ns())}
        return web.json_response({"ok": True}, headers=headers)

    fake_upstream.route("POST", "/v1/chat/completions", handler)
    out, _ = benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/chat/completions", "--token", TOKEN, "-r", "3"
    )
    table = rows(out)
    assert seconds(table["Upstream latency min"]) >= 0.05
    assert seconds(table["Upstream latency avg"]) <= seconds(table["Upstream latency max"])
    assert 0 < seconds(table["Proxy latency avg"]) < seconds(table["Avg latency"])
    assert {"Upstream latency p90", "Upstream latency p90 mean", "Proxy latency p90 mean"} <= set(table)


def test_cache_hits_are_counted_and_timed_from_the_proxy_headers(fake_upstream):
    fake_upstream.reply(
        "/v1/models", method="GET", json_body={"data": []},
        headers={
            "X-PROXY-CACHE": "hit", "Cache-Status": "llm-proxy; hit",
            "X-Proxy-Received-At": "2026-01-02T03:04:05.100000000Z",
            "X-Proxy-Final-Response-At": "2026-01-02T03:04:05.100250000Z",
        },
    )  # fmt: skip
    out, _ = benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/models", "--token", TOKEN, "--method", "GET", "-r", "4"
    )
    table = rows(out)
    assert table["Cache hits"] == "4"
    assert table["Proxy latency avg"] == "250.000µs"
    assert table["Upstream latency"] == "N/A"


def test_network_errors_have_their_own_row(fake_upstream):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out, _ = benchmark(
        "--base-url", f"http://127.0.0.1:{port}", "--endpoint", "/v1/models", "--token", TOKEN, "-r", "2"
    )
    table = rows(out)
    assert (table["Success"], table["Failed"], table["Network error"]) == ("0", "2", "2")


def test_debug_shows_a_sample_per_status_with_all_headers_and_never_the_token(fake_upstream):
    async def echo(request):  # an upstream that (wrongly) echoes the credentials back
        cache = {
            "X-PROXY-CACHE": "stored",
            "X-PROXY-CACHE-KEY": "llmproxy:cache:p1:abc",
            "Cache-Status": "llm-proxy; stored",
        }
        status = 200 if request.headers["X-REQUEST-START"][-1] in "02468" else 429
        return web.json_response(
            {"auth": request.headers["Authorization"]}, status=status, headers={**cache, "X-Echo": TOKEN}
        )

    fake_upstream.route("POST", "/v1/chat/completions", echo)
    out, err = benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/chat/completions", "--token", TOKEN,
        "-r", "12", "-c", "4", "--json", CHAT, "--debug",
    )  # fmt: skip
    assert TOKEN not in out and TOKEN not in err and TOKEN[3:20] not in out
    assert "Sample responses by status code:" in out
    assert "Authorization: Bearer <redacted>" in out
    assert "X-REQUEST-START: " in out and "Content-Type: application/json" in out  # request headers
    for header in (
        "X-Proxy-Cache: stored",
        "X-Proxy-Cache-Key: llmproxy:cache:p1:abc",
        "Cache-Status: llm-proxy; stored",
    ):
        assert header in out
    assert "Response body: " in out and 'Request body: {"model": "gpt-4o-mini"' in out


def test_json_output_is_machine_readable(fake_upstream):
    every_third_fails(fake_upstream)
    out, _ = benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/chat/completions", "--token", TOKEN,
        "-r", "6", "-c", "2", "--json", CHAT, "--json-output", "--debug",
    )  # fmt: skip
    result = json.loads(out)
    assert (result["total_requests"], result["success"], result["failed"]) == (6, 4, 2)
    assert result["status_counts"] == {"200": 4, "503": 2}
    assert set(result["latency"]) == {"avg", "min", "max", "p50", "p90", "p99", "p90_mean"}
    assert result["upstream_latency"] is None
    assert result["samples"]["503"]["request_headers"]["Authorization"] == "Bearer <redacted>"


def test_the_token_can_come_from_an_environment_variable(fake_upstream, monkeypatch):
    monkeypatch.setenv("BENCH_TOKEN", TOKEN)
    benchmark(
        "--base-url", fake_upstream.url, "--endpoint", "/v1/models", "--method", "GET", "--token-env", "BENCH_TOKEN"
    )
    assert fake_upstream.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setenv("PROXY_TOKEN", TOKEN + "-default")
    benchmark("--base-url", fake_upstream.url, "--endpoint", "/v1/models", "--method", "GET")
    assert fake_upstream.requests[1].headers["Authorization"] == f"Bearer {TOKEN}-default"


def test_a_missing_token_or_bad_json_is_a_clear_error(fake_upstream, monkeypatch):
    monkeypatch.delenv("PROXY_TOKEN", raising=False)
    with pytest.raises(CommandError, match="PROXY_TOKEN"):
        benchmark("--base-url", fake_upstream.url, "--endpoint", "/v1/models")
    with pytest.raises(CommandError, match="--json is not valid JSON"):
        benchmark("--base-url", fake_upstream.url, "--endpoint", "/v1/models", "--token", TOKEN, "--json", "{nope")


def test_through_the_proxy_the_table_splits_upstream_and_proxy_latency(proxy_server, token_pair):
    out, _ = benchmark(
        "--base-url", proxy_server.url, "--endpoint", "/v1/chat/completions", "--token", token_pair[1],
        "-r", "8", "-c", "2", "--json", CHAT,
    )  # fmt: skip
    table = rows(out)
    assert (table["Success"], table["200"]) == ("8", "8")
    assert seconds(table["Upstream latency avg"]) > 0 and seconds(table["Proxy latency avg"]) > 0
    assert len(proxy_server.upstream.requests) == 8
    assert all(
        r.headers["Authorization"] == "Bearer sk-upstream-acme-key-1234567890" for r in proxy_server.upstream.requests
    )


def test_through_the_proxy_cached_answers_are_counted_as_cache_hits(proxy_server, token_pair):
    out, _ = benchmark(
        "--base-url", proxy_server.url, "--endpoint", "/v1/chat/completions", "--token", token_pair[1],
        "-r", "5", "-c", "1", "--json", CHAT, "--cache", "--debug",
    )  # fmt: skip
    table = rows(out)
    assert (table["Success"], table["Cache hits"]) == ("5", "4")
    assert len(proxy_server.upstream.requests) == 1
    assert "X-Proxy-Cache: stored" in out and "X-Proxy-Cache-Key: " in out and "Cache-Status: llm-proxy; stored" in out
    assert token_pair[1] not in out
