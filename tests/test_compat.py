"""llmproxy.compat against the installed libraries: one test per helper, failing loudly on an upgrade.

Each helper reaches into a library's private internals; when an upgrade of Django, Daphne, Twisted or
prometheus_client removes or changes what a helper relies on, its test here fails naming the helper and
the installed version, before the hot path breaks in production.
"""

import inspect
from importlib.metadata import version

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.http.response import ResponseHeaders

from llmproxy import compat

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent


def broken(helper: str, library: str, what: str) -> str:
    return f"llmproxy.compat.{helper} no longer works with {library} {version(library)}: {what}"


def test_header_store_is_djangos_dict_of_name_and_value_by_lowercase_name():
    response = HttpResponse()
    response["X-Custom-Header"] = "one"
    try:
        store = compat.header_store(response.headers)
    except AttributeError:
        pytest.fail(broken("header_store", "Django", "ResponseHeaders has no _store"))
    assert isinstance(store, dict), broken("header_store", "Django", "_store is not a dict")
    assert store.get("x-custom-header") == ("X-Custom-Header", "one"), broken(
        "header_store", "Django", f"_store does not hold (name, value) by lowercase name: {store!r}"
    )
    store["x-direct"] = ("X-Direct", "two")
    assert response.headers["X-Direct"] == "two", broken("header_store", "Django", "a stored pair is not a header")
    headers = ResponseHeaders({"A": "1"})
    assert compat.header_store(headers) == {"a": ("A", "1")}, broken("header_store", "Django", "ResponseHeaders")


def test_replace_header_store_gives_a_response_all_its_headers_at_once():
    response = HttpResponse(b"body")
    compat.replace_header_store(response, {"x-one": ("X-One", "1"), "content-type": ("Content-Type", "text/plain")})
    assert response.headers["X-One"] == "1", broken("replace_header_store", "Django", "headers not replaced")
    assert dict(response.items()) == {"X-One": "1", "Content-Type": "text/plain"}, broken(
        "replace_header_store", "Django", f"response.items() is {dict(response.items())!r}"
    )


def test_streaming_iterator_is_the_iterator_the_response_was_given():
    async def body():
        yield b"chunk"

    iterator = body()
    response = StreamingHttpResponse(iterator)
    assert compat.streaming_iterator(response) is iterator, broken(
        "streaming_iterator", "Django", "StreamingHttpResponse no longer keeps its iterator as _iterator"
    )
    sync = StreamingHttpResponse(iter([b"a"]))
    assert compat.streaming_iterator(sync) is not None, broken("streaming_iterator", "Django", "sync iterator")


def test_resource_closers_are_what_close_calls():
    response = HttpResponse()
    closed = []
    try:
        compat.resource_closers(response).append(lambda: closed.append(True))
    except AttributeError:
        pytest.fail(broken("resource_closers", "Django", "HttpResponseBase has no _resource_closers"))
    # close() itself also sends request_finished (which closes database connections): read it instead
    source = inspect.getsource(HttpResponseBase.close)
    assert "for closer in self._resource_closers" in source, broken(
        "resource_closers", "Django", "HttpResponseBase.close() no longer calls _resource_closers"
    )
    for closer in compat.resource_closers(response):
        closer()
    assert closed == [True], broken("resource_closers", "Django", "the appended closer is not in _resource_closers")


def test_asgi_handler_methods_the_lean_handler_relies_on_keep_their_signatures():
    for name, parameters in compat.ASGI_HANDLER_METHODS.items():
        method = getattr(ASGIHandler, name, None)
        assert method is not None, broken("ASGI_HANDLER_METHODS", "Django", f"ASGIHandler.{name} is gone")
        found = tuple(inspect.signature(method).parameters)
        assert found == parameters, broken(
            "ASGI_HANDLER_METHODS", "Django", f"ASGIHandler.{name}{found} is not {name}{parameters}"
        )


def test_install_middleware_chain_sets_what_django_loads():
    from django.core.handlers.base import BaseHandler

    source = inspect.getsource(BaseHandler.load_middleware)
    for attribute in compat.ASGI_HANDLER_ATTRIBUTES:
        assert f"self.{attribute} =" in source, broken(
            "install_middleware_chain", "Django", f"BaseHandler.load_middleware no longer sets {attribute}"
        )
    handler = ASGIHandler.__new__(ASGIHandler)

    async def chain(request):
        return request

    compat.install_middleware_chain(handler, chain)
    assert getattr(handler, "_middleware_chain", None) is chain, broken("install_middleware_chain", "Django", "lost")
    source = inspect.getsource(BaseHandler.get_response_async)
    assert "self._middleware_chain(" in source, broken(
        "install_middleware_chain", "Django", "BaseHandler.get_response_async no longer calls _middleware_chain"
    )


def test_inner_get_response_is_djangos_resolve_and_call_step():
    handler = ASGIHandler.__new__(ASGIHandler)
    inner = compat.inner_get_response(handler)
    assert inspect.iscoroutinefunction(inner), broken(
        "inner_get_response", "Django", "_get_response_async is not a coroutine function"
    )
    assert "resolve_request" in inspect.getsource(inner), broken(
        "inner_get_response", "Django", "_get_response_async no longer resolves the request"
    )


def test_daphne_protocol_is_the_first_argument_of_daphnes_send():
    from functools import partial

    from daphne.http_protocol import WebRequest
    from daphne.server import Server

    parameters = tuple(inspect.signature(Server.handle_reply).parameters)
    assert parameters == ("self", "protocol", "message"), broken(
        "daphne_protocol", "daphne", f"Server.handle_reply{parameters} no longer takes the protocol first"
    )
    assert "partial(self.handle_reply" in inspect.getsource(Server), broken(
        "daphne_protocol", "daphne", "Server no longer hands applications partial(handle_reply, protocol)"
    )
    protocol = WebRequest.__new__(WebRequest)
    server = Server.__new__(Server)
    assert compat.daphne_protocol(partial(server.handle_reply, protocol)) is protocol, broken(
        "daphne_protocol", "daphne", "protocol not found"
    )

    async def other_send(message):
        return None

    assert compat.daphne_protocol(other_send) is None


def test_daphne_protocol_transport_can_abort_the_connection():
    from daphne.http_protocol import WebRequest
    from twisted.internet import tcp
    from twisted.web.http import Request

    assert issubclass(WebRequest, Request), broken(
        "daphne_protocol", "daphne", "WebRequest is no twisted.web Request (transport, channel, registerProducer)"
    )
    assert hasattr(tcp.Connection, "abortConnection"), broken(
        "daphne_protocol", "Twisted", "tcp.Connection has no abortConnection"
    )


def test_transport_waiting_and_channel_producer_read_twisteds_http_channel():
    from twisted.web.http import HTTPChannel

    channel = HTTPChannel()
    assert hasattr(channel, "_waitingForTransport"), broken(
        "transport_waiting", "Twisted", "HTTPChannel has no _waitingForTransport"
    )
    assert compat.transport_waiting(channel) is False
    channel._waitingForTransport = True
    assert compat.transport_waiting(channel) is True
    assert hasattr(channel, "_requestProducer"), broken(
        "channel_producer", "Twisted", "HTTPChannel has no _requestProducer"
    )
    producer = object()
    channel._requestProducer = producer
    assert compat.channel_producer(channel) is producer


def test_listening_ports_are_the_reactors_tcp_port_readers():
    from twisted.internet import tcp

    class Reactor:
        def getReaders(self):  # noqa: N802 - Twisted's interface
            return [port, object()]

    port = tcp.Port.__new__(tcp.Port)
    assert compat.listening_ports(Reactor()) == [port]
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    assert hasattr(AsyncioSelectorReactor, "getReaders"), broken(
        "listening_ports", "Twisted", "the asyncio reactor has no getReaders"
    )
    assert hasattr(tcp.Port, "stopListening"), broken("listening_ports", "Twisted", "tcp.Port has no stopListening")


def test_metric_name_is_the_family_name_a_metric_was_made_with():
    from prometheus_client import CollectorRegistry, Counter, Gauge

    registry = CollectorRegistry()
    gauge = Gauge("compat_check_seconds", "a gauge", registry=registry)
    counter = Counter("compat_check_events", "a counter", registry=registry)
    try:
        names = (compat.metric_name(gauge), compat.metric_name(counter))
    except AttributeError:
        pytest.fail(broken("metric_name", "prometheus_client", "metrics have no _name"))
    families = {family.name for family in registry.collect()}
    assert names == ("compat_check_seconds", "compat_check_events"), broken("metric_name", "prometheus_client", names)
    assert set(names) <= families, broken("metric_name", "prometheus_client", f"families are {families}")
