"""Instrumentation middleware for /v1: one event per proxied request, as the reference's middleware records.

Installed only in settings.PROXY_MIDDLEWARE, the proxy's lean async handler. Async-native, so Django
never hops to a thread for it. A streaming response is wrapped in a tee that keeps the first
OBSERVABILITY_MAX_RESPONSE_BODY_BYTES (chunk references in a list, joined once) and publishes from its
`finally`, which also runs when the client disconnects and the task is cancelled. Other responses are
published at once. Cache hits, conditional hits and `request.proxy_skip_event` publish nothing.

A request the view refused before any token was accepted (`request.proxy_refused`, the reason) is published
without its request or response body and with `X-Proxy-Refused: <reason>`: strangers cannot make the proxy
store, decode or forward what they send, and dispatch backends that want LLM calls only can skip it.
"""

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest

from instrumentation.bus import get_bus
from instrumentation.bus.queued import Throttled
from instrumentation.events import Event, canonical_header
from instrumentation.timefmt import rfc3339_nano
from llmproxy import compat

logger = logging.getLogger("instrumentation")

FIRST_CHUNK_HEADER = "X-Proxy-First-Chunk-At"
# Event-only headers (never sent to the client).
PROJECT_HEADER = "X-Proxy-Project-Id"
TOKEN_HEADER = "X-Proxy-Token-Id"
REFUSED_HEADER = "X-Proxy-Refused"
# The client's request Content-Encoding: consumers decode the event's request body only when this says so.
REQUEST_ENCODING_HEADER = "X-Proxy-Request-Content-Encoding"
_MAX_ENCODING_CHARS = 256  # real values are a few names ("gzip", "br"); a stranger's header is not copied whole
_CACHE_HITS = frozenset({"hit", "conditional-hit"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Never in an event. The proxy strips the upstream key before answering; these are belt and braces.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"})
_canonical_names: dict[str, str] = {}
_warn = Throttled(logger)


class InstrumentationMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[Any]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> Any:
        if not settings.OBSERVABILITY_ENABLED or not request.path.startswith("/v1"):
            return await self.get_response(request)
        started = time.perf_counter_ns()
        response: Any = await self.get_response(request)
        if getattr(request, "proxy_skip_event", False) or response.get("X-PROXY-CACHE", "").lower() in _CACHE_HITS:
            return response
        try:
            capture = Capture(request, response, started)
            if response.streaming:
                response.streaming_content = capture.wrap(response)
            else:
                body = None if capture.refused else response.content[: settings.OBSERVABILITY_MAX_RESPONSE_BODY_BYTES]
                capture.finish(body or None, time.time_ns())
        except Exception:  # instrumentation never fails a request
            _warn.warning("instrumentation: could not capture %s %s", request.method, request.path, exc_info=True)
        return response


class Capture:
    """What is known of one request when its response starts; `finish` publishes the event."""

    # Not the response itself: the tee is referenced by the response, and a cycle would leave a disconnected
    # stream's generator (and so its `finally`) to the cyclic garbage collector.
    __slots__ = (
        "request_id",
        "method",
        "path",
        "request_body",
        "status",
        "headers",
        "started",
        "chunks",
        "first_at",
        "done",
        "project_id",
        "token_id",
        "refused",
        "request_encoding",
    )

    def __init__(self, request: HttpRequest, response: Any, started_ns: int) -> None:
        self.request_id = (
            getattr(request, "proxy_request_id", None)
            or request.headers.get("X-Request-ID")
            or response.get("X-Request-ID", "")
        )
        self.method = request.method or ""
        self.path = request.path
        self.refused = getattr(request, "proxy_refused", "")
        self.request_body = _request_body(request) if request.method in _BODY_METHODS and not self.refused else None
        self.request_encoding = request.META.get("HTTP_CONTENT_ENCODING", "")[:_MAX_ENCODING_CHARS]
        self.status = response.status_code
        self.headers = response.headers
        self.started = started_ns
        self.chunks: list[bytes] = []
        self.first_at = 0
        self.done = False
        self.project_id = getattr(request, "proxy_project_id", "")
        self.token_id = getattr(request, "proxy_token_id", "")

    def wrap(self, response: Any) -> AsyncIterator[bytes] | Iterator[bytes] | Any:
        """The tee over the response's own iterator. Not over `streaming_content`: that getter's wrapper refers to
        the response, which would again make a cycle; make_bytes' job is done in the tee instead."""
        source = compat.streaming_iterator(response)
        # When the client goes away while a chunk is being sent, the handler closes the response (its
        # closers run) but the tee is only closed when garbage-collected: publish from the closer then.
        compat.resource_closers(response).append(self.finish_stream)
        if source is None:
            return self.tee(response.streaming_content) if response.is_async else response.streaming_content
        if response.is_async:
            return self.tee(cast(AsyncIterable[object], source))  # is_async: Django's own test of the iterator
        return self.tee_sync(cast(Iterable[object], source))

    async def tee(self, content: AsyncIterable[object]) -> AsyncIterator[bytes]:
        chunks = self.chunks
        room = settings.OBSERVABILITY_MAX_RESPONSE_BODY_BYTES
        try:
            async for chunk in content:
                if type(chunk) is not bytes:
                    chunk = _as_bytes(chunk)
                if chunk and not self.first_at:
                    self.first_at = time.time_ns()
                if room > 0:
                    chunks.append(chunk if len(chunk) <= room else chunk[:room])
                    room -= len(chunk)
                yield chunk
        finally:
            # No await here: this also runs from GeneratorExit when a disconnected client's stream is closed.
            self.finish_stream()

    def tee_sync(self, content: Iterable[object]) -> Iterator[bytes]:
        """The same for a synchronous iterator (e.g. a FileResponse)."""
        chunks = self.chunks
        room = settings.OBSERVABILITY_MAX_RESPONSE_BODY_BYTES
        try:
            for chunk in content:
                chunk = _as_bytes(chunk)
                if chunk and not self.first_at:
                    self.first_at = time.time_ns()
                if room > 0:
                    chunks.append(chunk if len(chunk) <= room else chunk[:room])
                    room -= len(chunk)
                yield chunk
        finally:
            self.finish_stream()

    def finish_stream(self) -> None:
        """Publish what the tee captured, once (from the tee's end or the response's closers, whichever is first)."""
        if not self.done:
            self.done = True
            self.finish(b"".join(self.chunks) if self.chunks else None, self.first_at)

    def finish(self, body: bytes | None, first_chunk_ns: int) -> None:
        """Publish the event; `body` is what was captured (callers keep it within the cap)."""
        try:
            headers = _event_headers(self.headers)
            if first_chunk_ns:
                headers[FIRST_CHUNK_HEADER] = [rfc3339_nano(first_chunk_ns)]
            # Who made the request, for per-project/per-token usage rollups (ids, never secrets).
            if self.project_id:
                headers[PROJECT_HEADER] = [str(self.project_id)]
            if self.token_id:
                headers[TOKEN_HEADER] = [str(self.token_id)]
            if self.refused:
                headers[REFUSED_HEADER] = [self.refused]
                body = None
            if self.request_encoding:
                headers[REQUEST_ENCODING_HEADER] = [self.request_encoding]
            event = Event(
                request_id=self.request_id,
                method=self.method,
                path=self.path,
                status=self.status,
                duration_ns=time.perf_counter_ns() - self.started,
                response_headers=headers,
                response_body=body,
                request_body=self.request_body,
            )
            get_bus().publish(event)
        except Exception:
            _warn.warning(
                "instrumentation: could not publish the event of %s %s", self.method, self.path, exc_info=True
            )


def _as_bytes(chunk: object) -> bytes:
    """HttpResponseBase.make_bytes without the response (text in DEFAULT_CHARSET; the proxy yields bytes)."""
    if isinstance(chunk, (bytes, memoryview, bytearray)):
        return bytes(chunk)
    return str(chunk).encode(settings.DEFAULT_CHARSET)


def _request_body(request: HttpRequest) -> bytes | None:
    """The first OBSERVABILITY_MAX_REQUEST_BODY_BYTES of the body the view read (read here if it did not)."""
    try:
        body = request.body  # cached by the view; slicing below copies only when the body is over the cap
    except Exception:  # the view streamed the body itself, or it is over DATA_UPLOAD_MAX_MEMORY_SIZE
        return None
    return body[: settings.OBSERVABILITY_MAX_REQUEST_BODY_BYTES]


def _event_headers(response_headers: Any) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    # ResponseHeaders keeps (name as set, value) per lower-cased name; reading that store directly is
    # several times cheaper than its Mapping interface, which looks every key up again.
    store = compat.header_store(response_headers)
    pairs = store.values() if isinstance(store, dict) else response_headers.items()
    for name, value in pairs:
        key = _canonical_names.get(name)
        if key is None:
            key = _remember_canonical(name)
        if key:
            headers.setdefault(key, []).append(value)
    return headers


def _remember_canonical(name: str) -> str:
    """Canonical name, or '' for a header that must never enter an event; memoised (bounded)."""
    key = "" if name.lower() in _SECRET_HEADERS else canonical_header(name)
    if len(_canonical_names) < 2048:
        _canonical_names[name] = key
    return key
