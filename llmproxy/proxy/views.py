"""The /v1 view: the reference's pipeline (§3.1) in its order, then the upstream call.

circuit breaker -> OPTIONS preflight -> method (405) -> endpoint (404) -> parameter whitelist (400) ->
origin (400/403) -> token (401/429) -> project active (403) -> cache -> count -> upstream key (503) -> upstream.
"""

import asyncio
import json
import logging
import time
import uuid

from django.conf import settings
from django.http import HttpResponse

from instrumentation import metrics

from . import auth, breaker, cache, cors, errors, params, providers, relay, upstream

logger = logging.getLogger(__name__)


async def proxy(request, path: str = ""):
    request.proxy_request_id = request_id = str(uuid.uuid4())
    received_ns, started = time.time_ns(), time.perf_counter()
    if breaker.is_open():
        request.proxy_skip_event = True  # the reference's breaker sits outside event capture
        response = errors.response(errors.circuit_open())
    else:
        try:
            response = await _pipeline(request, request_id, received_ns, started)
        except errors.ProxyError as exc:
            if exc.status in (502, 504):  # the upstream failed to answer
                metrics.count("errors")
            response = errors.response(exc)
        except Exception:
            logger.exception("unexpected error in the /v1 view")
            response = HttpResponse(errors.body("Internal server error"), status=500, content_type="application/json")
        origin = request.META.get("HTTP_ORIGIN", "")
        if origin and request.method != "OPTIONS":
            cors.echo(response, origin)
        breaker.record(response.status_code)
    response["X-Request-ID"] = request_id
    metrics.count("requests", status_class=f"{response.status_code // 100}xx")
    return response


async def _pipeline(request, request_id: str, received_ns: int, started: float):
    provider = providers.get_provider()
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

    token = await auth.avalidate_token(meta.get("HTTP_AUTHORIZATION", ""))
    request.proxy_token_id, request.proxy_project_id = token.token_id, token.project_id
    project = await auth.aproject_guard(token, request)
    # cache: lookup
    cached = await cache.alookup(request, project_id=token.project_id, token_id=token.token_id, body=body)
    if cached.response is not None:
        return cached.response  # a hit: no quota, no upstream key, no event
    await auth.acount_request(token)
    key = auth.upstream_key(project)
    return await _forward(request, provider, key, token.project_id, request_id, received_ns, started)


async def _forward(request, provider, key: str, project_id: str, request_id: str, received_ns: int, started: float):
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
    try:
        upstream_response = await upstream.asend(provider, request.method, url, headers, request.body, headers_by)
    except asyncio.CancelledError:
        # The client went away before the answer started: the upstream call is cancelled (its connection
        # closed) and, like the reference, the request ends as 408 so that its event is still published.
        asyncio.current_task().uncancel()
        raise errors.canceled() from None
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
