"""Every use of a library's private internals, each behind a named helper saying why.

The hot path reaches past public APIs in a few places because the public way costs measurably more per
request (Django's header validation, its response wrapping, its sync_to_async hops) or does not exist
(aborting a started response under Daphne, flow control of Daphne's writes). Nothing else in the project
touches these internals. tests/test_compat.py checks each helper against the installed Django, Daphne,
Twisted and prometheus_client and fails naming the helper and the library version when an upgrade removes
or changes what it relies on.
"""

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponseBase, StreamingHttpResponse
from django.http.response import ResponseHeaders

HeaderStore = dict[str, tuple[str, str]]  # {lowercase name: (name as given, value)}

# --- Django: response headers ---------------------------------------------------------------------------


def header_store(headers: ResponseHeaders) -> HeaderStore:
    """Django's own header dict of a response (`ResponseHeaders._store`).

    Why: ResponseHeaders validates and encodes every value on `__setitem__`; relaying ~15 upstream headers
    per response that way is a measurable share of the proxy's own time, and the values come from parsed
    header lines or from the proxy, so the check is moot. Reading the store also gives the (name, value)
    pairs in one step for the ASGI start message.
    """
    store: HeaderStore = headers._store
    return store


def replace_header_store(response: HttpResponseBase, store: HeaderStore) -> None:
    """Give a response a whole prepared header dict (a cache hit's headers, validated once when stored)."""
    response.headers._store = store


# --- Django: response bodies and closing ----------------------------------------------------------------


def streaming_iterator(response: StreamingHttpResponse) -> Iterable[bytes] | AsyncIterable[bytes] | None:
    """The body iterator a StreamingHttpResponse was given (`_iterator`), unwrapped; None if it has none.

    Why: `streaming_content` wraps it in a generator that re-encodes each chunk; the cache store step and
    the instrumentation middleware read the upstream's chunks as they are and wrap them only when needed.
    """
    iterator: Iterable[bytes] | AsyncIterable[bytes] | None = getattr(response, "_iterator", None)
    return iterator


def resource_closers(response: HttpResponseBase) -> list[Callable[[], object]]:
    """What `response.close()` calls (`_resource_closers`), to add to or to call without close().

    Why: HttpResponse.close() also sends request_finished, whose receivers are for sync requests and would
    cost /v1 a thread hop per request; the lean handler calls the closers itself.
    """
    closers: list[Callable[[], object]] = response._resource_closers  # type: ignore[attr-defined]
    return closers


# --- Django: the ASGIHandler the lean /v1 handler is built on -------------------------------------------

# ASGIHandler methods the lean handler overrides or calls, with the parameters it relies on. `load_middleware`
# sets the private attributes below instead of Django's own loading, which would adapt sync middleware with
# a thread hop per request.
ASGI_HANDLER_METHODS = {
    "handle": ("self", "scope", "receive", "send"),
    "create_request": ("self", "scope", "body_file"),
    "run_get_response": ("self", "request"),
    "send_response": ("self", "response", "send"),
    "get_response_async": ("self", "request"),
    "_get_response_async": ("self", "request"),
    "resolve_request": ("self", "request"),
    "load_middleware": ("self", "is_async"),
}
ASGI_HANDLER_ATTRIBUTES = (
    "_view_middleware",
    "_template_response_middleware",
    "_exception_middleware",
    "_middleware_chain",
)


def inner_get_response(handler: ASGIHandler) -> Callable[[Any], Any]:
    """The innermost step of Django's request handling (`_get_response_async`: resolve, call the view),
    which the lean handler wraps in its own middleware chain."""
    inner: Callable[[Any], Any] = handler._get_response_async  # type: ignore[attr-defined]
    return inner


def install_middleware_chain(handler: ASGIHandler, chain: Callable[[Any], Any]) -> None:
    """Set what BaseHandler.load_middleware would set: no view/exception/template-response middleware, and
    `chain` as the handler's middleware chain."""
    handler._view_middleware = []  # type: ignore[attr-defined]
    handler._template_response_middleware = []  # type: ignore[attr-defined]
    handler._exception_middleware = []  # type: ignore[attr-defined]
    handler._middleware_chain = chain  # type: ignore[attr-defined]


# --- Daphne and Twisted -----------------------------------------------------------------------------------


def daphne_protocol(send: Callable[..., Any]) -> Any | None:
    """Daphne's protocol object (its `WebRequest`, a twisted.web Request) behind an ASGI `send`, or None.

    Why: Daphne's `send` is functools.partial(Server.handle_reply, protocol) and offers no way to abort a
    started response nor to wait for a slow client; both need the protocol (its transport, its channel).
    Under any other server `send` is something else and this returns None.
    """
    args = getattr(send, "args", ())
    protocol = args[0] if args else None
    if protocol is None or not type(protocol).__module__.startswith("daphne."):
        return None
    return protocol


def transport_waiting(channel: Any) -> bool:
    """Whether Twisted's HTTP channel is waiting for its transport to drain (`_waitingForTransport`): the
    send buffer was already full before the proxy registered its producer."""
    return bool(getattr(channel, "_waitingForTransport", False))


def channel_producer(channel: Any) -> Any | None:
    """The producer registered on Twisted's HTTP channel (`_requestProducer`), to unregister ours only."""
    return getattr(channel, "_requestProducer", None)


def listening_ports(reactor: Any) -> list[Any]:
    """The reactor's listening TCP ports (its readers that are `tcp.Port`s), to stop accepting on SIGTERM.

    Why: Daphne does not hand its listening ports to the application; the reactor's readers include them.
    """
    from twisted.internet import tcp

    return [reader for reader in list(reactor.getReaders()) if isinstance(reader, tcp.Port)]


# --- prometheus_client ------------------------------------------------------------------------------------


def metric_name(metric: Any) -> str:
    """The family name a prometheus_client metric was created with (`_name`, e.g. without `_total`).

    Why: prometheus_client exposes it only through `collect()`, which builds the samples too.
    """
    name: str = metric._name
    return name
