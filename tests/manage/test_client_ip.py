"""llmproxy.clientip: forwarded headers are believed only from TRUSTED_PROXIES, for requests and ASGI scopes."""

import pytest

from llmproxy.clientip import client_ip


def scope(peer: str, **headers: str) -> dict:
    encoded = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "client": (peer, 40000), "headers": encoded}


def test_an_asgi_scope_from_a_trusted_proxy_gives_the_forwarded_client():
    assert client_ip(scope("127.0.0.1", x_forwarded_for="203.0.113.8")) == "203.0.113.8"
    assert client_ip(scope("::1", x_real_ip="203.0.113.9")) == "203.0.113.9"


def test_an_asgi_scope_from_an_untrusted_peer_gives_the_peer(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(scope("127.0.0.1", x_forwarded_for="203.0.113.8", x_real_ip="203.0.113.9")) == "127.0.0.1"


@pytest.mark.parametrize("forwarded", ["not-an-address", "203.0.113.8:1234"])
def test_a_forwarded_entry_that_is_not_an_address_is_never_taken_for_a_trusted_proxy(forwarded):
    assert client_ip({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": f"198.51.100.3, {forwarded}"}) == forwarded


def test_a_scope_without_a_client_has_no_address():
    assert client_ip({"type": "http", "client": None, "headers": [(b"x-forwarded-for", b"1.2.3.4")]}) == ""
