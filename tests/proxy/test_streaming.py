"""Streaming pass-through, timeouts that never cut a stream, and cancellation in both directions."""

import asyncio
import threading
import time

import httpx
import pytest
from aiohttp import web

from tests.support.fake_upstream import sse_chunks

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def test_chunks_reach_the_client_as_the_upstream_sends_them(proxy_server, auth):
    events = sse_chunks(("a", "b", "c"))
    proxy_server.upstream.sse("/v1/chat/completions", events, delays=[0, 0.6, 0.6, 0, 0])
    arrivals = []
    with httpx.Client(base_url=proxy_server.url) as client:
        with client.stream("POST", "/v1/chat/completions", headers=auth, json={**CHAT, "stream": True}) as response:
            started = time.monotonic()
            for chunk in response.iter_raw():
                arrivals.append((time.monotonic() - started, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    assert body == "".join(events).encode()
    assert arrivals[0][0] < 0.4 and arrivals[-1][0] >= 1.1  # the first event did not wait for the rest


def test_request_timeout_does_not_cut_a_stream(proxy_server, auth, settings):
    settings.REQUEST_TIMEOUT = 0.5
    events = sse_chunks(("a", "b", "c"))
    proxy_server.upstream.sse("/v1/chat/completions", events, delays=[0, 0.4, 0.4, 0.4, 0])
    with httpx.Client(base_url=proxy_server.url) as client:
        response = client.post("/v1/chat/completions", headers=auth, json={**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.text == "".join(events)


def test_request_timeout_bounds_the_whole_non_streaming_exchange(proxy_server, auth, settings):
    settings.REQUEST_TIMEOUT = 0.6

    async def slow_body(request):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"partial":')
        await asyncio.sleep(3)
        await response.write(b"true}")
        return response

    proxy_server.upstream.route("POST", "/v1/chat/completions", slow_body)
    started = time.monotonic()
    with httpx.Client(base_url=proxy_server.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", headers=auth, json=CHAT)  # aborted: the answer had started
    assert time.monotonic() - started < 2


def test_an_idle_stream_is_aborted_after_the_idle_timeout(proxy_server, auth):
    proxy_server.configure(timeouts={"idle_connection": "500ms"})
    proxy_server.upstream.sse("/v1/chat/completions", sse_chunks(), delays=[0, 3, 0, 0, 0])
    received = []
    with httpx.Client(base_url=proxy_server.url) as client, pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/v1/chat/completions", headers=auth, json={**CHAT, "stream": True}) as response:
            for chunk in response.iter_raw():
                received.append(chunk)
    assert received and received[0].startswith(b"data: ")


def test_an_upstream_that_drops_the_connection_mid_body_aborts_the_client(proxy_server, auth):
    async def drop(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: {}\n\n")
        request.transport.close()
        return response

    proxy_server.upstream.route("POST", "/v1/chat/completions", drop)
    with httpx.Client(base_url=proxy_server.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", headers=auth, json={**CHAT, "stream": True})
    with httpx.Client(base_url=proxy_server.url) as client:  # and the server is fine
        assert client.get("/v1/models", headers=auth).status_code == 200


def test_a_client_leaving_mid_stream_closes_the_upstream_stream_promptly(proxy_server, auth):
    proxy_server.upstream.sse("/v1/chat/completions", sse_chunks(), delays=[0, 10, 0, 0, 0])
    with httpx.Client(base_url=proxy_server.url) as client:
        with client.stream("POST", "/v1/chat/completions", headers=auth, json={**CHAT, "stream": True}) as response:
            next(response.iter_raw())
    assert proxy_server.upstream.disconnected.wait(2)


def test_a_client_leaving_before_the_answer_cancels_the_upstream_request(proxy_server, auth):
    cancelled = threading.Event()

    async def slow(request):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.json_response({})

    proxy_server.upstream.route("POST", "/v1/chat/completions", slow)
    with httpx.Client(base_url=proxy_server.url, timeout=0.5) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", headers=auth, json=CHAT)
    assert cancelled.wait(2)
