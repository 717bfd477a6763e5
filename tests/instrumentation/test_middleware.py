"""The capture middleware, called directly around small views (no server): what enters an event and when."""

import asyncio
import json
import re

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from instrumentation.middleware import FIRST_CHUNK_HEADER, InstrumentationMiddleware
from tests.support.waiting import await_until

rf = RequestFactory()
REQUEST_ID = "5d0f0c63-3d8c-4a8e-9d55-2a1c0c7a6b01"


def chat_request(body: bytes = b'{"model":"gpt-4o-mini"}', path: str = "/v1/chat/completions", **headers):
    request = rf.post(path, data=body, content_type="application/json", **headers)
    request.proxy_request_id = REQUEST_ID
    return request


def middleware_around(response_factory):
    async def view(request):
        request.body  # noqa: B018 - the proxy reads the body like this before forwarding it
        return response_factory()

    return InstrumentationMiddleware(view)


def streaming(chunks, delay: float = 0.0, **headers):
    async def content():
        for chunk in chunks:
            if delay:
                await asyncio.sleep(delay)
            yield chunk

    response = StreamingHttpResponse(content(), content_type="text/event-stream")
    for name, value in headers.items():
        response[name] = value
    return response


async def drain(response) -> bytes:
    return b"".join([chunk async for chunk in response])


async def test_a_json_answer_becomes_one_event_with_the_reference_fields(memory_bus, events):
    def answer():
        response = HttpResponse(b'{"id":"chatcmpl-1"}', content_type="application/json", status=201)
        response["X-Request-ID"] = REQUEST_ID
        return response

    response = await middleware_around(answer)(chat_request())
    await memory_bus.flush()

    assert response.content == b'{"id":"chatcmpl-1"}'
    [event] = events
    assert (event.request_id, event.method, event.path, event.status) == (
        REQUEST_ID,
        "POST",
        "/v1/chat/completions",
        201,
    )
    assert event.request_body == b'{"model":"gpt-4o-mini"}'
    assert event.response_body == b'{"id":"chatcmpl-1"}'
    assert event.duration_ns > 0
    assert event.response_headers["Content-Type"] == ["application/json"]
    assert event.response_headers["X-Request-Id"] == [REQUEST_ID]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", event.header(FIRST_CHUNK_HEADER))
    assert FIRST_CHUNK_HEADER not in response  # only the event carries it, never the client


async def test_a_stream_reaches_the_client_unchanged_and_is_published_when_it_ends(memory_bus, events):
    chunks = [b'data: {"a":1}\n\n', b'data: {"a":2}\n\n', b"data: [DONE]\n\n"]
    response = await middleware_around(lambda: streaming(chunks))(chat_request())
    await memory_bus.flush()
    assert events == []  # nothing until the stream has ended

    assert await drain(response) == b"".join(chunks)
    await memory_bus.flush()
    [event] = events
    assert event.response_body == b"".join(chunks)
    assert event.status == 200
    assert event.header(FIRST_CHUNK_HEADER)


async def test_a_stream_cut_by_a_client_disconnect_is_still_published(memory_bus, events):
    response = await middleware_around(lambda: streaming([b"data: 1\n\n"] * 50, delay=0.01))(chat_request())

    read = []

    async def client_reads_then_leaves():
        async for chunk in response:
            read.append(chunk)

    task = asyncio.create_task(client_reads_then_leaves())
    await await_until(lambda: len(read) >= 5, message="the client to read a few of the 50 chunks")
    task.cancel()  # what Django's ASGI handler does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await task
    await memory_bus.flush()

    [event] = events
    assert 0 < len(event.response_body) < 50 * len(b"data: 1\n\n")


async def test_bodies_are_captured_up_to_the_caps_and_proxied_whole(memory_bus, events, settings):
    settings.OBSERVABILITY_MAX_REQUEST_BODY_BYTES = 65536
    settings.OBSERVABILITY_MAX_RESPONSE_BODY_BYTES = 262144
    request_body = b"r" * (100 * 1024)
    response_chunks = [bytes([65 + i % 26]) * 10_000 for i in range(30)]  # 300,000 bytes in 30 chunks
    seen_by_view = []

    async def view(request):
        seen_by_view.append(request.body)
        return streaming(response_chunks)

    response = await InstrumentationMiddleware(view)(chat_request(request_body))
    received = await drain(response)
    await memory_bus.flush()

    assert seen_by_view == [request_body]
    assert received == b"".join(response_chunks)
    [event] = events
    assert event.request_body == request_body[:65536]
    assert event.response_body == b"".join(response_chunks)[:262144]


async def test_a_non_streaming_body_is_captured_up_to_the_cap(memory_bus, events, settings):
    settings.OBSERVABILITY_MAX_RESPONSE_BODY_BYTES = 10
    response = await middleware_around(lambda: HttpResponse(b"0123456789abcdef"))(chat_request())
    await memory_bus.flush()
    assert response.content == b"0123456789abcdef"
    assert events[0].response_body == b"0123456789"


@pytest.mark.parametrize("cache_status", ["hit", "HIT", "conditional-hit", "Conditional-Hit"])
async def test_cache_hits_publish_nothing(memory_bus, events, cache_status):
    def cached():
        response = HttpResponse(b"{}", content_type="application/json")
        response["X-PROXY-CACHE"] = cache_status
        return response

    await middleware_around(cached)(chat_request())
    await memory_bus.flush()
    assert events == []


async def test_a_cache_miss_is_published(memory_bus, events):
    def missed():
        response = HttpResponse(b"{}", content_type="application/json")
        response["X-PROXY-CACHE"] = "miss"
        return response

    await middleware_around(missed)(chat_request())
    await memory_bus.flush()
    assert len(events) == 1


async def test_a_request_the_view_marks_as_skipped_publishes_nothing(memory_bus, events):
    async def breaker_open(request):
        request.proxy_skip_event = True
        return HttpResponse(status=503)

    await InstrumentationMiddleware(breaker_open)(chat_request())
    await memory_bus.flush()
    assert events == []


async def test_only_v1_traffic_is_instrumented(memory_bus, events):
    await middleware_around(lambda: HttpResponse(b"ok"))(rf.get("/health"))
    await memory_bus.flush()
    assert events == []


async def test_observability_can_be_switched_off(memory_bus, events, settings):
    settings.OBSERVABILITY_ENABLED = False
    await middleware_around(lambda: HttpResponse(b"{}"))(chat_request())
    await memory_bus.flush()
    assert events == []


async def test_credentials_and_cookies_never_enter_an_event(memory_bus, events):
    def answer():
        response = HttpResponse(b"{}", content_type="application/json")
        response["Authorization"] = "Bearer sk-upstream-acme-key-1234567890"
        response["Proxy-Authorization"] = "Basic c2VjcmV0"
        response["Set-Cookie"] = "session=secret"
        response["X-Api-Key"] = "sk-upstream-acme-key-1234567890"
        response.set_cookie("csrftoken", "secret-cookie")
        return response

    request = chat_request(HTTP_AUTHORIZATION="Bearer sk-proxy-token", HTTP_COOKIE="session=abc")
    await middleware_around(answer)(request)
    await memory_bus.flush()

    data = events[0].to_json()
    for secret in ("sk-upstream-acme-key-1234567890", "sk-proxy-token", "secret", "c2VjcmV0", "session="):
        assert secret not in data
    assert set(events[0].response_headers) == {"Content-Type", FIRST_CHUNK_HEADER}


async def test_request_id_falls_back_to_the_request_header(memory_bus, events):
    request = rf.get("/v1/models", HTTP_X_REQUEST_ID="client-supplied-id")
    await middleware_around(lambda: HttpResponse(b"{}"))(request)
    await memory_bus.flush()
    assert events[0].request_id == "client-supplied-id"
    assert events[0].request_body is None  # GET: no request body captured


async def test_local_errors_and_preflights_are_published(memory_bus, events):
    unauthorized = chat_request()
    await middleware_around(lambda: HttpResponse(b'{"error":"Invalid token"}\n', status=401))(unauthorized)
    preflight = rf.options("/v1/chat/completions")
    preflight.proxy_request_id = "preflight-id"
    await middleware_around(lambda: HttpResponse(status=204))(preflight)
    await memory_bus.flush()

    assert [(e.method, e.status) for e in events] == [("POST", 401), ("OPTIONS", 204)]
    assert events[0].response_body == b'{"error":"Invalid token"}\n'
    assert events[1].response_body is None and events[1].request_body is None


async def test_a_failing_view_is_published_with_its_error_status(memory_bus, events):
    from django.core.handlers.exception import convert_exception_to_response

    async def broken(request):
        raise RuntimeError("boom")

    response = await InstrumentationMiddleware(convert_exception_to_response(broken))(chat_request())
    await memory_bus.flush()
    assert response.status_code == 500
    assert events[0].status == 500


async def test_the_event_json_is_the_reference_wire_format(memory_bus, events):
    await middleware_around(lambda: HttpResponse(b"hi", content_type="text/plain"))(chat_request(b"{}"))
    await memory_bus.flush()
    data = json.loads(events[0].to_json())
    assert list(data) == [
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
    assert data["LogID"] == 0
    assert data["ResponseBody"] == "aGk=" and data["RequestBody"] == "e30="
    assert isinstance(data["Duration"], int)
    assert all(isinstance(v, list) for v in data["ResponseHeaders"].values())


async def test_a_stream_the_server_stops_sending_is_published_when_the_response_is_closed(memory_bus, events):
    response = await middleware_around(lambda: streaming([b"a", b"b", b"c"]))(chat_request())
    content = aiter(response)
    assert await anext(content) == b"a"
    await content.aclose()  # the handler's aclosing() when the client left during a send
    response.close()  # the handler always closes the response; the tee itself is only closed by the GC
    await memory_bus.flush()
    [event] = events
    assert event.response_body == b"a"
    del response, content  # the tee's own `finally` must not publish a second time
    await memory_bus.flush()
    assert len(events) == 1


async def test_a_capture_failure_never_fails_the_request(memory_bus, events, caplog, monkeypatch):
    def broken(*args):
        raise RuntimeError("capture bug")

    monkeypatch.setattr("instrumentation.middleware.Capture", broken)
    response = await middleware_around(lambda: HttpResponse(b"{}"))(chat_request())
    assert response.status_code == 200 and response.content == b"{}"
    assert "could not capture" in caplog.text


async def test_a_publish_failure_never_fails_a_stream(memory_bus, events, caplog, monkeypatch):
    def broken():
        raise RuntimeError("bus bug")

    monkeypatch.setattr("instrumentation.middleware.get_bus", broken)
    response = await middleware_around(lambda: streaming([b"a", b"b"]))(chat_request())
    assert await drain(response) == b"ab"
    assert "could not publish" in caplog.text
