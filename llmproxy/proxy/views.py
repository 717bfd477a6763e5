"""The /v1 view: the reference's request pipeline, in its order, then the upstream call.

OPTIONS preflight -> method (405) -> endpoint (404) -> parameter whitelist (400) -> origin (400/403) ->
token (401/429) -> project active (403) -> circuit breaker (503) -> cache -> count -> upstream key (503) ->
upstream. The reference's breaker is global and comes first; ours is per project, so it needs the token.
"""

import asyncio
import json
import logging
import time
import uuid

import aiohttp
from django.conf import settings
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse

from instrumentation import metrics

from . import auth, cache, cors, errors, params, relay, state, upstream
from .asgi_types import ProxyRequest
from .providers import Provider
from .runtime import ProxyRuntime

logger = logging.getLogger(__name__)

# Answers that refuse a request on its face, before (or at) the token check; 429 and 503 are not among them.
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 405, 413})


async def proxy(request: ProxyRequest, path: str = "") -> HttpResponseBase:
    request.proxy_request_id = request_id = str(uuid.uuid4())
    received_ns, started = time.time_ns(), time.perf_counter()
    response: HttpResponseBase
    try:
        response = await _pipeline(request, request_id, received_ns, started)
    except errors.ProxyError as exc:
        response = _error_response(request, exc)
    except Exception:
        logger.exception("unexpected error in the /v1 view")
        response = HttpResponse(errors.body("Internal server error"), status=500, content_type="application/json")
    origin = request.META.get("HTTP_ORIGIN", "")
    # The breaker's 503 (the one answer without an event) sits outside the CORS layer, as in the reference.
    if origin and request.method != "OPTIONS" and not getattr(request, "proxy_skip_event", False):
        cors.echo(response, origin)
    response["X-Request-ID"] = request_id
    metrics.count("requests", status_class=f"{response.status_code // 100}xx")
    return response


def _error_response(request: ProxyRequest, exc: errors.ProxyError) -> HttpResponse:
    if exc.status in (502, 504):  # the upstream failed to answer
        metrics.count("errors")
    elif exc.status in REFUSED_STATUSES and not getattr(request, "proxy_token_id", ""):
        # Refused before any token was accepted: a stranger's request. Its event carries no bodies
        # (instrumentation/middleware.py), so nobody can make the proxy store or forward what they send.
        request.proxy_refused = reason = exc.code or refusal_reason(exc.error)
        metrics.count("requests_refused", reason=reason)
    return errors.response(exc)


def refusal_reason(error: str) -> str:
    """`Method not allowed` -> `method_not_allowed`, for errors of the catalogue without a code."""
    return "_".join("".join(c if c.isalnum() else " " for c in error.lower()).split())[:64] or "refused"


async def _pipeline(request: ProxyRequest, request_id: str, received_ns: int, started: float) -> HttpResponseBase:
    body_error = getattr(request, "proxy_body_error", None)
    if body_error is not None:  # the lean handler stopped reading a body over MAX_REQUEST_SIZE
        raise body_error
    runtime = state.runtime()
    provider = runtime.providers.current()
    meta = request.META
    if request.method == "OPTIONS":
        return cors.preflight(meta.get("HTTP_ORIGIN", ""), meta.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", ""))
    if request.method not in provider.allowed_methods:
        raise errors.method_not_allowed()
    if not provider.endpoint_allowed(request.path) or _has_dot_segment(request.path):
        raise errors.endpoint_not_found()
    body = request.body
    if provider.param_whitelist and request.method == "POST":
        params.check_request(body, meta, provider.param_whitelist)  # 400 param_not_allowed / invalid_request_body
    cors.check_origin(provider, meta.get("HTTP_ORIGIN", ""))

    token = await runtime.tokens.avalidate(meta.get("HTTP_AUTHORIZATION", ""))
    request.proxy_token_id, request.proxy_project_id = token.token_id, token.project_id
    project = await runtime.projects.aguard(token, request)
    if runtime.breaker.is_open(token.project_id):
        request.proxy_skip_event = True  # the reference's breaker sits outside event capture
        raise errors.circuit_open()
    # cache: lookup
    cached = await cache.alookup(request, project_id=token.project_id, token_id=token.token_id, body=body)
    if cached.response is not None:
        return cached.response  # a hit: no quota, no upstream key, no event
    await runtime.tokens.acount(token)
    key = auth.upstream_key(project)
    return await _forward(runtime, request, provider, key, token.project_id, request_id, received_ns, started)


async def _forward(
    runtime: ProxyRuntime,
    request: ProxyRequest,
    provider: Provider,
    key: str,
    project_id: str,
    request_id: str,
    received_ns: int,
    started: float,
) -> StreamingHttpResponse:
    loop = asyncio.get_running_loop()
    now = loop.time()
    deadline = None if is_streaming(request.body) else now + min(settings.REQUEST_TIMEOUT, provider.timeouts.request)
    headers_by = (
        now + provider.timeouts.response_header
        if deadline is None
        else min(now + provider.timeouts.response_header, deadline)
    )
    start_ns = time.time_ns()
    headers = relay.upstream_headers(
        request.scope, key=key, project_id=project_id, request_id=request_id, start_ns=start_ns
    )
    url = relay.upstream_url(provider.base_url, request.scope)
    sent = time.perf_counter()
    upstream_response = await _asend(runtime, provider, request, url, headers, headers_by, project_id)
    arrived = time.perf_counter()
    metrics.observe("upstream_ttfb_seconds", arrived - sent)
    if upstream_response.status >= 400:
        metrics.count("errors")
    response = relay.client_response(
        upstream_response, request_id=request_id, received_ns=received_ns, start_ns=start_ns, deadline=deadline
    )
    # cache: store
    response = await cache.astore_response(request, response)
    metrics.observe("proxy_overhead_seconds", (sent - started) + (time.perf_counter() - arrived))
    return response


async def _asend(
    runtime: ProxyRuntime,
    provider: Provider,
    request: ProxyRequest,
    url: str,
    headers: list[tuple[str, str]],
    headers_by: float,
    project_id: str,
) -> aiohttp.ClientResponse:
    """The upstream call, its outcome recorded by the project's circuit breaker."""
    breaker = runtime.breaker
    try:
        upstream_response = await upstream.asend(
            runtime.upstream, provider, request.method, url, headers, request.body, headers_by
        )
    except asyncio.CancelledError:
        # The client went away before the answer started: the upstream call is cancelled (its connection
        # closed) and, like the reference, the request ends as 408 so that its event is still published.
        if (task := asyncio.current_task()) is not None:
            task.uncancel()
        raise errors.canceled() from None
    except errors.ProxyError as exc:
        if exc.status == 502:  # unreachable, refused or reset; a 504 timeout only says the upstream is slow
            breaker.record(project_id, 502)
        raise
    breaker.record(project_id, upstream_response.status)
    return upstream_response


def is_streaming(body: bytes) -> bool:
    """The request asks for a stream: its JSON body has "stream": true (only then is there no deadline)."""
    if b'"stream"' not in body:
        return False
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("stream") is True


def _has_dot_segment(path: str) -> bool:
    # /v1/models/../files would pass the prefix check and reach another upstream endpoint.
    return "/." in path and any(segment in (".", "..") for segment in path.split("/"))
