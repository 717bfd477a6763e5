"""Header rules and the body pass-through between client and upstream (reference §3.3, §3.4).

The upstream body is relayed chunk by chunk as it arrives: no buffering, no re-encoding (bytes stay as
the upstream compressed them), so SSE reaches the client event by event.
"""

import asyncio
import time

import aiohttp
from django.conf import settings
from django.http import StreamingHttpResponse

from .handler import UpstreamInterrupted

# RFC 9110 §7.6.1 plus the usual extras; never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Client headers the proxy replaces or drops (the reference strips forwarding headers, then Go re-adds
# X-Forwarded-For with the real peer).
NOT_FORWARDED = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"authorization",
    b"x-forwarded-for",
    b"x-real-ip",
    b"cf-connecting-ip",
    b"cf-ipcountry",
    b"x-client-ip",
    b"x-original-forwarded-for",
    b"x-request-id",
    b"x-proxy",
    b"x-proxy-version",
    b"x-proxy-id",
    b"x-upstream-request-start",
}
EVENT_STREAM = "text/event-stream"


def upstream_url(base_url: str, scope: dict) -> str:
    """base_url's scheme and host with the client's path and query exactly as sent."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return base_url + (path + b"?" + query if query else path).decode("latin1")


def upstream_headers(scope: dict, *, key: str, project_id: str, request_id: str, start_ns: int) -> list:
    listed = _connection_tokens(scope["headers"])
    headers, has_accept = [], False
    for name, value in scope["headers"]:
        if name in NOT_FORWARDED or name in listed:
            continue
        has_accept = has_accept or (name == b"accept" and bool(value.strip()))
        headers.append((name.decode("latin1"), value.decode("latin1")))
    if not has_accept and _query_asks_stream(scope.get("query_string", b"")):
        headers.append(("Accept", EVENT_STREAM))
    client = scope.get("client")
    if client:
        headers.append(("X-Forwarded-For", client[0]))
    headers += [
        ("Authorization", f"Bearer {key}"),
        ("X-Proxy", "llm-proxy"),
        ("X-Proxy-Version", settings.VERSION),
        ("X-Proxy-ID", project_id),
        ("X-Request-ID", request_id),
        ("X-UPSTREAM-REQUEST-START", str(start_ns)),
    ]
    return headers


def client_response(upstream, *, request_id: str, received_ns: int, start_ns: int, deadline: float | None):
    """The client's response: upstream status, headers (hop-by-hop removed) and body, plus the proxy's headers."""
    response = StreamingHttpResponse(relay(upstream, deadline), status=upstream.status)
    del response["Content-Type"]  # Django's default; the upstream's own (if any) is copied below
    _copy_headers(upstream.raw_headers, response)
    stop_ns = time.time_ns()
    response["X-Proxy"] = "llm-proxy"
    response["X-Request-ID"] = request_id
    response["X-Proxy-Received-At"] = rfc3339_nano(received_ns)
    response["X-Proxy-First-Response-At"] = response["X-Proxy-Final-Response-At"] = rfc3339_nano(stop_ns)
    response["X-UPSTREAM-REQUEST-STOP"] = str(stop_ns)
    if EVENT_STREAM in response.get("Content-Type", ""):
        response["X-Accel-Buffering"] = "no"  # tell nginx & co. not to buffer the stream either
    else:
        response["X-UPSTREAM-REQUEST-START"] = str(start_ns)  # the reference echoes it for non-streams only
    return response


async def relay(upstream, deadline: float | None):
    """Yield the upstream body as it arrives. `deadline` (loop time) bounds non-streaming requests only;
    between chunks the session's idle read timeout applies. A client that goes away closes the upstream
    connection (the generator is closed); a broken upstream aborts the client's connection."""
    content = upstream.content
    complete = False
    try:
        while True:
            if deadline is None:
                chunk = await content.readany()
            else:
                async with asyncio.timeout_at(deadline):
                    chunk = await content.readany()
            if not chunk:
                break
            yield chunk
        complete = True
    except TimeoutError as exc:
        raise UpstreamInterrupted("upstream body timed out") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamInterrupted(f"upstream body broke off: {type(exc).__name__}: {exc}") from exc
    finally:
        if complete:
            upstream.release()  # back to the keep-alive pool
        else:
            upstream.close()  # drop the connection: the upstream sees the client went away


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{fraction:09d}".rstrip("0").rstrip(".") + "Z"


def _copy_headers(raw_headers, response) -> None:
    listed = _connection_tokens(raw_headers)
    seen: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name_lower = raw_name.lower()
        if name_lower in HOP_BY_HOP or name_lower in listed:
            continue
        name, value = raw_name.decode("latin1"), raw_value.decode("latin1")
        if name_lower == b"set-cookie" and "set-cookie" in seen:
            # Cookies cannot be joined with commas: the lean handler sends these as separate lines.
            response.proxy_raw_headers = [*getattr(response, "proxy_raw_headers", []), (raw_name, raw_value)]
            continue
        key = name.lower()
        seen[key] = f"{seen[key]}, {value}" if key in seen else value
        response[name] = seen[key]


def _connection_tokens(headers) -> frozenset:
    """Header names listed in Connection, which are hop-by-hop for this connection only."""
    tokens = [v for n, v in headers if n.lower() == b"connection"]
    if not tokens:
        return frozenset()
    return frozenset(t.strip().lower() for v in tokens for t in v.split(b",") if t.strip())


def _query_asks_stream(query: bytes) -> bool:
    return b"stream=true" in query and any(part == b"stream=true" for part in query.split(b"&"))
