"""The proxy's HTTP response cache: the reference's, except that entries are scoped per project (the
reference shares answers across tenants), HTTP_CACHE_DEFAULT_TTL and HTTP_CACHE_MAX_OBJECT_BYTES apply, a
truncated stream is never kept, and hits replay no stale X-Request-ID or CORS headers.

The view calls `alookup` once the token is known to be valid (without counting it) and the project
is active (`# cache: lookup`): a hit comes back as a finished response, anything else as a
`CacheLookup` kept on the request. When the upstream answer's headers arrive the view calls
`astore_response` (`# cache: store`), which decides whether to keep the answer and annotates it.
Entries are scoped per project; the view adds X-Request-ID and CORS headers to every answer, hits included.
"""

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import ResponseHeaders

from instrumentation import metrics
from instrumentation.timefmt import rfc3339_nano
from llmproxy import compat

from . import cache_rules as rules
from . import state
from .asgi_types import ProxyRequest
from .cache_backends import CachedResponse, scoped_key
from .cache_rules import StoreDecision
from .timefmt import http_date_now

logger = logging.getLogger(__name__)

HeaderGetter = Callable[[str], str]
R = TypeVar("R", bound=StreamingHttpResponse)
Headers = Sequence[tuple[str, str]]

HIT, MISS, STORED, BYPASS, CONDITIONAL_HIT = "hit", "miss", "stored", "bypass", "conditional-hit"
LOOKUP_METHODS = {"GET", "HEAD", "POST"}


@dataclass(slots=True)
class CacheLookup:
    """The lookup's verdict for one request, carried to the store step."""

    enabled: bool = True
    key: str = ""  # the reference's hex key; "" when the request is not cacheable
    project_id: str = ""
    outcome: str = MISS  # miss or bypass, for a request that goes upstream
    forced_ttl: int = 0  # the client's opt-in TTL
    request_no_store: bool = False
    revalidate: bool = False  # the client sent `no-cache` or `max-age=0`
    head: bool = False  # a HEAD request: looked up under the GET key, its body-less answer never stored
    vary_get: HeaderGetter | None = None  # request header getter, for the Vary digest at store time
    revalidating: CachedResponse | None = None  # entry being revalidated with a conditional upstream request
    upstream_headers: dict[str, str] = field(default_factory=dict)  # to add to the upstream request
    response: HttpResponse | None = None  # a hit or conditional-hit, ready to return


@dataclass(slots=True)
class UpstreamAnswer:
    """An upstream answer as the view relays it: status, headers (name, value) and the body chunks.

    The store step adds its own headers in `extra`; `replaced` means status and headers were replaced whole.
    """

    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]
    extra: dict[str, str] = field(default_factory=dict)
    replaced: bool = False


def header_getter(request: ProxyRequest) -> HeaderGetter:
    meta = request.META

    def get(name: str) -> str:
        value: str = meta.get("HTTP_" + name.upper().replace("-", "_"), "")
        return value

    return get


# --- lookup ------------------------------------------------------------------------------------


async def alookup(
    request: ProxyRequest, *, project_id: str, token_id: str = "", body: bytes | None = None
) -> CacheLookup:
    """Find a cached answer for `request` in its project's cache (the reference's lookup).

    The verdict is also kept as `request.proxy_cache` for the store step. Headers the upstream must see
    (X-Body-Hash, the revalidation's If-None-Match) are set on the request itself, as the reference does.
    """
    lookup = request.proxy_cache = await _alookup(request, project_id, token_id, body)
    if lookup.upstream_headers and lookup.response is None:
        _forward_headers(request, lookup.upstream_headers)
    return lookup


async def _alookup(request: ProxyRequest, project_id: str, token_id: str, body: bytes | None) -> CacheLookup:
    if not settings.HTTP_CACHE_ENABLED:
        return CacheLookup(enabled=False)
    get = header_getter(request)
    lookup = _prepare(request, get, project_id, body)
    if not lookup.key:
        metrics.count("cache_misses")
        return lookup
    runtime = state.runtime()
    entry = await runtime.cache.get().aget(scoped_key(project_id, lookup.key))
    if entry is None or (entry.vary_key and rules.vary_key(entry.vary, get) != entry.vary_key):
        metrics.count("cache_misses")
        return lookup
    cache_control = entry.header("Cache-Control")
    if "public" not in cache_control.lower() and not rules.shareable(rules.parse_cache_control(cache_control)):
        metrics.count("cache_bypass")
        lookup.outcome = BYPASS
        return lookup
    if lookup.revalidate:
        metrics.count("cache_misses")
        _revalidate(lookup, entry, get)
        return lookup
    status = HIT
    if request.method in ("GET", "HEAD") and rules.not_modified(
        get("If-None-Match"), get("If-Modified-Since"), entry.header("ETag"), entry.header("Last-Modified")
    ):
        status = CONDITIONAL_HIT
    metrics.count("cache_hits")
    lookup.response = serve(request, entry, lookup.key, status)
    if token_id:
        runtime.usage.record_cache_hit(token_id)  # batched, off the request path
    return lookup


def _prepare(request: ProxyRequest, get: HeaderGetter, project_id: str, body: bytes | None) -> CacheLookup:
    """Work out whether and under which key the request is looked up (and its answer stored)."""
    lookup = CacheLookup(project_id=str(project_id), vary_get=get)
    method = request.method
    if method not in LOOKUP_METHODS:
        return lookup
    policy = rules.request_policy(get("Cache-Control"))
    lookup.request_no_store, lookup.revalidate = policy.no_store, policy.revalidate
    body_hash = suffix = ""
    if method == "POST":
        body = request.body if body is None else body
        lookup.forced_ttl = policy.client_ttl
        if not lookup.forced_ttl or len(body) > rules.MAX_HASHED_BODY:
            return lookup
        body_hash, suffix = rules.sha256_hex(body), policy.ttl_suffix
        lookup.upstream_headers["X-Body-Hash"] = body_hash
    elif method == "GET":
        lookup.forced_ttl = policy.client_ttl
    # HEAD is answered from the GET entry (a HEAD answer has no body worth storing)
    lookup.head = method == "HEAD"
    key_method = "GET" if lookup.head else method
    lookup.key = rules.cache_key(
        key_method, request.path, request.META.get("QUERY_STRING", ""), get, body_hash=body_hash, ttl_suffix=suffix
    )
    return lookup


def _revalidate(lookup: CacheLookup, entry: CachedResponse, get: HeaderGetter) -> None:
    """Client `no-cache`/`max-age=0`: ask upstream conditionally; a 304 then refreshes the entry."""
    if get("If-None-Match") or get("If-Modified-Since"):
        return  # the client's own conditionals go upstream unchanged, and a 304 is for the client
    if etag := entry.header("ETag"):
        lookup.upstream_headers["If-None-Match"] = etag
    if last_modified := entry.header("Last-Modified"):
        lookup.upstream_headers["If-Modified-Since"] = last_modified
    if lookup.upstream_headers.keys() & {"If-None-Match", "If-Modified-Since"}:
        lookup.revalidating = entry


def _forward_headers(request: ProxyRequest, extra: dict[str, str]) -> None:
    scope = getattr(request, "scope", None)
    if scope is None:  # not an ASGI request (unit tests)
        return
    names = {name.lower().encode() for name in extra}
    headers = [item for item in scope["headers"] if item[0] not in names]
    scope["headers"] = headers + [(name.lower().encode(), value.encode("latin1")) for name, value in extra.items()]


# --- serving -----------------------------------------------------------------------------------


def serve(request: ProxyRequest, entry: CachedResponse, key: str, status: str) -> HttpResponse:
    """A cached answer with fresh Date, Age and proxy timestamps (the view adds X-Request-ID and CORS)."""
    not_modified = status == CONDITIONAL_HIT
    body = b"" if not_modified or request.method == "HEAD" else entry.body
    response = HttpResponse(body, status=304 if not_modified else entry.status_code)
    # The hot path of a hit: the entry's headers are validated once and copied in whole (Django's own
    # header store), instead of a dozen checked assignments per hit.
    compat.replace_header_store(response, dict(entry.served.get(status) or _prepare_headers(entry, key, status)))
    now = rfc3339_nano(time.time_ns())
    response.headers["Date"] = http_date_now()
    response.headers["Age"] = str(max(0, int(time.time() - entry.stored_at)))
    response.headers["X-Proxy-Received-At"] = now
    response.headers["X-Proxy-First-Response-At"] = now
    response.headers["X-Proxy-Final-Response-At"] = now
    return response


def _prepare_headers(entry: CachedResponse, key: str, status: str) -> compat.HeaderStore:
    headers = ResponseHeaders({})
    for name, values in entry.headers.items():
        headers[name] = ", ".join(values)
    if status != CONDITIONAL_HIT:
        headers["Content-Length"] = str(len(entry.body))
    headers["X-Proxy"] = "llm-proxy"
    annotate(headers, status, key)
    store = entry.served[status] = compat.header_store(headers)
    return store


def annotate(headers: ResponseHeaders | dict[str, str], status: str, key: str = "", debug: str = "") -> None:
    """The cache's own headers: X-PROXY-CACHE, X-PROXY-CACHE-KEY, Cache-Status and, on a miss, why."""
    headers["X-PROXY-CACHE"] = status
    if key:
        headers["X-PROXY-CACHE-KEY"] = key
    headers["Cache-Status"] = f"llm-proxy; {status}"
    if debug:
        headers["X-CACHE-DEBUG"] = debug


# --- storing -----------------------------------------------------------------------------------


async def astore_response(request: ProxyRequest, response: R) -> R:
    """The store step on the view's streaming response: keep the answer if allowed, annotate it."""
    lookup = getattr(request, "proxy_cache", None)
    if lookup is None or not lookup.enabled:
        return response
    # Django's header store and body iterator directly: re-setting every header (each one validated) and
    # re-wrapping the body of answers that are not kept cost more than the decision itself.
    store = compat.header_store(response.headers)
    body = cast(AsyncIterator[bytes], compat.streaming_iterator(response))  # relay.relay, an async generator
    result = await astore(lookup, UpstreamAnswer(response.status_code, list(store.values()), body))
    if result.replaced:  # our own revalidation got a 304: the cached answer replaces it
        response.status_code = result.status
        store.clear()
        for name, value in result.headers:
            response.headers[name] = value
    for name, value in result.extra.items():  # ASCII values made here
        store[name.lower()] = (name, value)
    if result.body is not body:
        response.streaming_content = result.body
    return response


async def astore(lookup: CacheLookup, answer: UpstreamAnswer) -> UpstreamAnswer:
    """Decide whether to keep the upstream answer, keep it, and annotate it (the reference's store rules)."""
    if not lookup.enabled:
        return answer
    if not lookup.key:
        return _annotated(answer, MISS)
    if answer.status == 304 and lookup.revalidating is not None:
        return await _refreshed(lookup, answer)
    if lookup.head:
        return _annotated(answer, lookup.outcome, lookup.key, "head-not-stored")
    headers = {name.lower(): value for name, value in answer.headers}
    is_stream = "text/event-stream" in headers.get("content-type", "").lower()
    decision = rules.store_decision(
        status=answer.status,
        response_cc=headers.get("cache-control", ""),
        vary=headers.get("vary", ""),
        is_stream=is_stream,
        forced_ttl=lookup.forced_ttl,
        default_ttl=settings.HTTP_CACHE_DEFAULT_TTL,
        stream_caching=settings.HTTP_CACHE_STREAM_RESPONSES,
        request_no_store=lookup.request_no_store,
    )
    if not decision.ttl:
        return _annotated(answer, lookup.outcome, lookup.key, decision.reason)
    if _too_large(headers.get("content-length", "")):
        return _annotated(answer, lookup.outcome, lookup.key, "too-large")
    if is_stream:
        answer.body = _tee_stream(lookup, answer.status, answer.headers, answer.body, decision)
        return _annotated(answer, MISS, lookup.key, "streaming-response")
    return await _store_whole(lookup, answer, decision)


async def _store_whole(lookup: CacheLookup, answer: UpstreamAnswer, decision: StoreDecision) -> UpstreamAnswer:
    """Read the (small, non-streamed) body before answering, so that "stored" is true when the client reads it."""
    limit = settings.HTTP_CACHE_MAX_OBJECT_BYTES
    chunks: list[bytes] = []
    size, failure = 0, None
    iterator = aiter(answer.body)
    try:
        async for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except Exception as exc:  # re-raised in the relayed body, where the view handles upstream failures
        failure = exc
    answer.body = _replay(chunks, iterator if size > limit else None, failure)
    if failure is not None or size > limit:
        return _annotated(answer, lookup.outcome, lookup.key, "too-large" if failure is None else "incomplete")
    stored = await _put(lookup, answer.status, answer.headers, b"".join(chunks), decision)
    if not stored:
        return _annotated(answer, lookup.outcome, lookup.key, "store-failed")
    return _annotated(answer, STORED, lookup.key)


async def _replay(
    chunks: list[bytes], rest: AsyncIterator[bytes] | None, failure: Exception | None
) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if failure is not None:
        raise failure
    if rest is not None:
        async for chunk in rest:
            yield chunk


SSE_DONE = b"data: [DONE]"


async def _tee_stream(
    lookup: CacheLookup, status: int, headers: Headers, body: AsyncIterator[bytes], decision: StoreDecision
) -> AsyncIterator[bytes]:
    """Pass an SSE stream through untouched; store it only when it completed and fits (never truncated)."""
    limit = settings.HTTP_CACHE_MAX_OBJECT_BYTES
    captured: list[bytes] | None = []
    size = 0
    async for chunk in body:
        if captured is not None:
            size += len(chunk)
            if size <= limit:
                captured.append(chunk)
            else:
                captured = None  # too big: relay the rest without keeping it
        if captured is not None and chunk.rstrip().endswith(SSE_DONE):
            # An OpenAI stream is complete at `data: [DONE]`; clients such as the openai SDK close the connection
            # right after it, so store before relaying it rather than at the upstream's end of stream.
            await _put(lookup, status, headers, b"".join(captured), decision)
            captured = None
        yield chunk
    # reached only when the upstream ended the stream normally (not on error, disconnect or cancellation)
    if captured is not None:
        await _put(lookup, status, headers, b"".join(captured), decision)


async def _refreshed(lookup: CacheLookup, answer: UpstreamAnswer) -> UpstreamAnswer:
    """Upstream confirmed our entry (304 to the proxy's own conditional): serve it, with refreshed metadata."""
    async for _ in answer.body:  # drain the empty 304 body so the upstream connection goes back to the pool
        pass
    entry = lookup.revalidating
    assert entry is not None  # astore comes here only when revalidating
    merged = {name.lower(): (name, values) for name, values in entry.headers.items()}
    for name, value in answer.headers:
        if name.lower() not in {"content-length", "content-type", "content-encoding"}:
            merged[name.lower()] = (name, [value])
    headers = [(name, value) for name, values in merged.values() for value in values]
    decision = rules.store_decision(
        status=entry.status_code,
        response_cc=_first(headers, "Cache-Control"),
        vary=_first(headers, "Vary"),
        is_stream=False,
        forced_ttl=lookup.forced_ttl,
        default_ttl=settings.HTTP_CACHE_DEFAULT_TTL,
        stream_caching=settings.HTTP_CACHE_STREAM_RESPONSES,
        request_no_store=lookup.request_no_store,
    )
    headers.append(("Content-Length", str(len(entry.body))))
    result = UpstreamAnswer(entry.status_code, headers, _replay([entry.body], None, None), replaced=True)
    if decision.ttl and await _put(lookup, entry.status_code, headers, entry.body, decision):
        return _annotated(result, STORED, lookup.key, "revalidated")
    return _annotated(result, MISS, lookup.key, "revalidated")


async def _put(lookup: CacheLookup, status: int, headers: Headers, body: bytes, decision: StoreDecision) -> bool:
    vary = _first(headers, "Vary")
    entry = CachedResponse(
        status_code=status,
        headers=rules.stored_headers(headers, decision),
        body=body,
        vary=vary,
        vary_key=rules.vary_key(vary, lookup.vary_get) if lookup.vary_get else "",
    )
    stored = await state.runtime().cache.get().aset(scoped_key(lookup.project_id, lookup.key), entry, decision.ttl)
    if stored:
        metrics.count("cache_stores")
    return stored


def _annotated(answer: UpstreamAnswer, status: str, key: str = "", debug: str = "") -> UpstreamAnswer:
    annotate(answer.extra, status, key, debug)
    return answer


def _first(headers: Headers, name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), "")


def _too_large(content_length: str) -> bool:
    return content_length.isdigit() and int(content_length) > settings.HTTP_CACHE_MAX_OBJECT_BYTES
