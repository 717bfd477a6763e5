"""Header rules and the body pass-through between client and upstream (as the reference forwards them).

The upstream body is relayed chunk by chunk as it arrives: no buffering, no re-encoding (bytes stay as
the upstream compressed them), so SSE reaches the client event by event.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import aiohttp
from django.conf import settings
from django.http import StreamingHttpResponse

from instrumentation.timefmt import rfc3339_nano
from llmproxy import compat

from .asgi_types import Scope
from .errors import UpstreamInterrupted

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
HOP_BY_HOP_NAMES = frozenset(name.decode() for name in HOP_BY_HOP)
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


class RelayedResponse(StreamingHttpResponse):
    """An upstream answer on its way to the client."""

    # Repeated upstream headers that cannot be joined with commas (Set-Cookie): the lean handler sends each.
    proxy_raw_headers: list[tuple[bytes, bytes]] = []  # never appended to: replaced per response


def upstream_url(base_url: str, scope: Scope) -> str:
    """base_url's scheme and host with the client's path and query exactly as sent."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return base_url + (path + b"?" + query if query else path).decode("latin1")


def upstream_headers(
    scope: Scope, *, key: str, project_id: str, request_id: str, start_ns: int
) -> list[tuple[str, str]]:
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


def client_response(
    upstream: aiohttp.ClientResponse, *, request_id: str, received_ns: int, start_ns: int, deadline: float | None
) -> "RelayedResponse":
    """The client's response: upstream status, headers (hop-by-hop removed) and body, plus the proxy's headers."""
    response = RelayedResponse(relay(upstream, deadline), status=upstream.status)
    # Headers go straight into Django's header store ({lowercase name: (name, value)}): these values come
    # from the upstream's parsed header lines or from us, so ResponseHeaders' per-item validation is moot,
    # and at ~15 headers per response it is a measurable share of the proxy's own time.
    store = compat.header_store(response.headers)
    store.clear()  # Django's default Content-Type: the upstream's own, if any, is copied instead
    _copy_headers(upstream.raw_headers, store, response)
    stop_ns = time.time_ns()
    stop = rfc3339_nano(stop_ns)
    store["x-proxy"] = ("X-Proxy", "llm-proxy")
    store["x-request-id"] = ("X-Request-ID", request_id)
    store["x-proxy-received-at"] = ("X-Proxy-Received-At", rfc3339_nano(received_ns))
    store["x-proxy-first-response-at"] = ("X-Proxy-First-Response-At", stop)
    store["x-proxy-final-response-at"] = ("X-Proxy-Final-Response-At", stop)
    store["x-upstream-request-stop"] = ("X-UPSTREAM-REQUEST-STOP", str(stop_ns))
    if EVENT_STREAM in store.get("content-type", ("", ""))[1]:
        store["x-accel-buffering"] = ("X-Accel-Buffering", "no")  # tell nginx & co. not to buffer it either
    else:  # the reference echoes the start for non-streams only
        store["x-upstream-request-start"] = ("X-UPSTREAM-REQUEST-START", str(start_ns))
    return response


async def relay(upstream: aiohttp.ClientResponse, deadline: float | None) -> AsyncIterator[bytes]:
    """Yield the upstream body as it arrives. `deadline` (loop time) bounds non-streaming requests only;
    between chunks the session's idle read timeout applies. A client that goes away closes the upstream
    connection (the generator is closed); a broken upstream aborts the client's connection."""
    content = upstream.content
    complete = False
    try:
        while True:
            chunk = content.read_nowait()  # what already arrived: no wait, so no timer either
            if not chunk:
                if content.at_eof():
                    break
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


def _copy_headers(
    raw_headers: Iterable[tuple[bytes, bytes]], store: compat.HeaderStore, response: "RelayedResponse"
) -> None:
    connection = None
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin1")
        key = name.lower()
        if key in HOP_BY_HOP_NAMES:
            if key == "connection":
                connection = f"{connection}, {raw_value.decode('latin1')}" if connection else raw_value.decode("latin1")
            continue
        value = raw_value.decode("latin1")
        if key in store:
            if key == "set-cookie":  # cookies cannot be joined with commas: the lean handler sends these apart
                response.proxy_raw_headers = [*response.proxy_raw_headers, (raw_name, raw_value)]
                continue
            value = f"{store[key][1]}, {value}"
        store[key] = (name, value)
    if connection:  # headers named in Connection are hop-by-hop for this connection only
        for token in connection.split(","):
            store.pop(token.strip().lower(), None)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in Connection, which are hop-by-hop for this connection only."""
    tokens = [v for n, v in headers if n.lower() == b"connection"]
    if not tokens:
        return frozenset()
    return frozenset(t.strip().lower() for v in tokens for t in v.split(b",") if t.strip())


def _query_asks_stream(query: bytes) -> bool:
    return b"stream=true" in query and any(part == b"stream=true" for part in query.split(b"&"))
