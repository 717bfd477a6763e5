"""A hostile upstream costs the web process bounded memory and still yields a well-formed event.

Huge bodies, compressed bombs, malformed SSE and streams that never end: the proxy relays bytes as they
arrive, never decodes them, keeps at most OBSERVABILITY_MAX_RESPONSE_BODY_BYTES for the event and at most
HTTP_CACHE_MAX_OBJECT_BYTES for the cache. Memory figures are the peak RSS (VmHWM) of a real server process.
"""

import asyncio
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from instrumentation.bus import get_bus, reset_for_tests
from tests.conftest import MANAGEMENT_TOKEN, write_provider_config
from tests.instrumentation.conftest import Collected
from tests.proxy.test_processes import ROOT, free_port, shared_database_url
from tests.support.waiting import wait_until_serving

MB = 1024 * 1024
CHUNK = b"x" * 65536
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
EVENT_CAP = 262144  # OBSERVABILITY_MAX_RESPONSE_BODY_BYTES's default


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def big_answer(upstream, path: str, size: int, *, announced: bool, content_type: str = "application/json") -> None:
    """`path` answers `size` bytes, sent in 64 KiB writes, with Content-Length or chunked."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        if announced:
            response.content_length = size
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        while sent < size:
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    upstream.route("POST", path, handler)


def endless_stream(upstream, path: str) -> None:
    """`path` answers an SSE stream that never ends (until the client goes away)."""
    line = b"data: " + json.dumps({"choices": [{"delta": {"content": "y" * 1000}}]}).encode() + b"\n\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(line * 16)
                await asyncio.sleep(0)
        except (ConnectionResetError, asyncio.CancelledError):
            upstream.disconnected.set()
            raise

    upstream.route("POST", path, handler)


def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body that expands to `decoded_size` zero bytes (built without holding them)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    parts = [packer.compress(block) for _ in range(decoded_size // MB)]
    return b"".join(parts) + packer.flush()


def received(response: httpx.Response) -> int:
    return sum(len(chunk) for chunk in response.iter_raw())


# --- a real server process: peak memory -----------------------------------------------------------


SERVERS = {
    "daphne": lambda port: [str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port)],
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--port", str(port), "--log-level", "warning"],
}


def start_server(kind: str, tmp_path, database_url: str, upstream_url: str) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "providers.yaml"
    write_provider_config(config, upstream_url)
    port = free_port()
    environment = {
        **os.environ,
        "MANAGEMENT_TOKEN": MANAGEMENT_TOKEN,
        "DATABASE_URL": database_url,
        "API_CONFIG_PATH": str(config),
        "LLM_PROXY_EVENT_BUS": "in-memory",
        "DATA_DIR": str(tmp_path),
        "AUDIT_LOG_FILE": str(tmp_path / "audit.log"),
        "FILE_EVENT_LOG": "",
        "HTTP_CACHE_ENABLED": "true",
    }
    command = [*SERVERS[kind](port), "llmproxy.asgi:application"]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, process)
    return process, url


@pytest.fixture(params=list(SERVERS))
def server(request, transactional_db, tmp_path, fake_upstream, token_pair):
    """A server process of each kind serving the proxy (caching on, in memory), and the token's header."""
    process, url = start_server(request.param, tmp_path, shared_database_url(tmp_path), fake_upstream.url)
    yield process, url, {"Authorization": f"Bearer {token_pair[1]}"}
    process.kill()
    process.wait()
    process.stderr.close()


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
def test_an_answer_too_large_for_the_cache_is_relayed_without_being_held_whole(server, fake_upstream, announced):
    process, url, auth = server
    size = 50 * MB
    big_answer(fake_upstream, "/v1/echo", size, announced=announced)
    big_answer(fake_upstream, "/v1/embeddings", 2 * MB, announced=announced)
    headers = {**auth, "Cache-Control": "public, max-age=60"}  # the client opts in to caching
    with httpx.stream("POST", url + "/v1/embeddings", json=CHAT, headers=headers, timeout=60) as warm_up:
        assert received(warm_up) == 2 * MB  # the same path once, over the cache's limit too
    before = peak_rss(process.pid)

    with httpx.stream("POST", url + "/v1/echo", json=CHAT, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["X-CACHE-DEBUG"] == "too-large"
        assert received(response) == size

    growth = peak_rss(process.pid) - before
    assert growth < 10 * MB, f"peak RSS grew by {growth / MB:.1f} MB for a {size // MB} MB answer"


def test_a_stream_that_never_ends_costs_bounded_memory(server, fake_upstream):
    process, url, auth = server
    endless_stream(fake_upstream, "/v1/chat/completions")
    with httpx.stream("POST", url + "/v1/chat/completions", json=CHAT, headers=auth, timeout=60) as warm_up:
        next(warm_up.iter_raw())
    before = peak_rss(process.pid)

    relayed = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=CHAT, headers=auth, timeout=60) as response:
        for chunk in response.iter_raw():
            relayed += len(chunk)
            if relayed > 50 * MB:
                break  # the client gives up; the upstream never would

    assert fake_upstream.disconnected.wait(10)  # the proxy closed the upstream connection
    growth = peak_rss(process.pid) - before
    assert growth < 10 * MB, f"peak RSS grew by {growth / MB:.1f} MB while relaying {relayed // MB} MB"


def test_paced_answers_leave_a_keep_alive_connection_usable_and_bounded(server, fake_upstream):
    process, url, auth = server
    big_answer(fake_upstream, "/v1/echo", 30 * MB, announced=True)
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        assert client.get("/v1/models").status_code == 200  # the connection is open and the path warm
        before = peak_rss(process.pid)
        sizes = []
        for _ in range(3):  # the same connection each time: flow control is set up and released per response
            with client.stream("POST", "/v1/echo", json=CHAT) as response:
                sizes.append(received(response))
        growth = peak_rss(process.pid) - before
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            streamed = b"".join(response.iter_raw())
        assert client.get("/v1/models").status_code == 200
    assert sizes == [30 * MB] * 3
    assert growth < 10 * MB, f"peak RSS grew by {growth / MB:.1f} MB over three 30 MB answers on one connection"
    assert streamed.endswith(b"data: [DONE]\n\n")
    assert process.poll() is None


# --- in process: what the client and the event get -----------------------------------------------


@pytest.fixture
def events(settings):
    """Every event the in-memory bus hands on in this test."""
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    reset_for_tests()
    collected = Collected()
    get_bus().subscribe(collected)
    yield collected
    reset_for_tests()


@pytest.fixture
def http(events, proxy_server, token_pair):
    with httpx.Client(base_url=proxy_server.url, timeout=30, headers={"Authorization": f"Bearer {token_pair[1]}"}) as c:
        yield c


def test_a_compressed_bomb_is_relayed_and_captured_as_sent_never_decoded(http, events, proxy_server):
    bomb = gzip_bomb(200 * MB)
    assert len(bomb) < EVENT_CAP  # about 200 KB on the wire
    proxy_server.upstream.reply(
        "/v1/echo", body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )

    with http.stream("POST", "/v1/echo", json=CHAT) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert b"".join(response.iter_raw()) == bomb

    [event] = events.wait_for(1)
    assert event.response_body == bomb
    assert event.response_headers["Content-Encoding"] == ["gzip"]
    json.loads(event.to_bytes())


def test_a_huge_answer_reaches_the_client_whole_and_its_event_at_the_cap(http, events, proxy_server):
    big_answer(proxy_server.upstream, "/v1/echo", 20 * MB, announced=False)

    with http.stream("POST", "/v1/echo", json=CHAT, headers={"Cache-Control": "public, max-age=60"}) as response:
        assert response.headers["X-CACHE-DEBUG"] == "too-large"
        assert received(response) == 20 * MB

    [event] = events.wait_for(1)
    assert event.response_body == CHUNK * (EVENT_CAP // len(CHUNK))
    assert json.loads(event.to_bytes())["Status"] == 200


def test_malformed_sse_is_relayed_as_sent_and_yields_a_well_formed_event(http, events, proxy_server):
    garbage = [
        "data: {not json\r\r\n",
        "event: \x00\x01\n:comment without end",
        "data: \ud800 lone surrogate and \u2028\n\n",
        "data: [DONE" + "\n" * 3,
        "no field at all " * 100,
    ]
    raw = [part.encode("utf-8", "surrogatepass") for part in garbage] + [b"\xff\xfe invalid utf-8 \xc3\n\n"]
    proxy_server.upstream.route("POST", "/v1/chat/completions", _raw_stream(raw))

    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        relayed = b"".join(response.iter_raw())

    assert relayed == b"".join(raw)
    [event] = events.wait_for(1)
    assert event.response_body == relayed
    assert json.loads(event.to_bytes())["Status"] == 200


def test_an_endless_stream_is_captured_up_to_the_cap_and_published_when_the_client_leaves(http, events, proxy_server):
    endless_stream(proxy_server.upstream, "/v1/chat/completions")

    relayed = 0
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        for chunk in response.iter_raw():
            relayed += len(chunk)
            if relayed > 4 * MB:
                break

    [event] = events.wait_for(1)
    assert len(event.response_body) == EVENT_CAP
    assert event.response_body.startswith(b"data: ")
    json.loads(event.to_bytes())
    assert proxy_server.upstream.disconnected.wait(10)


def _raw_stream(parts: list[bytes]):
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
        await response.write_eof()
        return response

    return handler
