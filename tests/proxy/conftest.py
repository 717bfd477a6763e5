"""Fixtures of the proxy tests: an HTTP client on the proxy, a token, and a view into the database thread."""

import asyncio
import contextlib

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection

from tests.support.redis_server import OwnRedis
from tokens.services import token_create


@pytest.fixture
def http(proxy_server):
    """A plain httpx client on the proxy (no default headers beyond httpx's own)."""
    with httpx.Client(base_url=proxy_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def auth(token_pair):
    """Authorization header of the 60-minute unlimited token."""
    return {"Authorization": f"Bearer {token_pair[1]}"}


@pytest.fixture
def limited_token(project):
    def make(max_requests: int):
        token, secret = token_create(project=project, duration_minutes=5, max_requests=max_requests)
        return token, {"Authorization": f"Bearer {secret}"}

    return make


def raw_request(url: str, request: bytes) -> bytes:
    """Send these exact bytes to the server at `url` and return everything it answers until it closes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def in_db_thread(fn):
    """Run `fn` in asgiref's shared sync thread, where the proxy does its database work."""
    return asyncio.run(sync_to_async(fn)())


@contextlib.contextmanager
def database_queries():
    """Record the SQL the proxy runs (in its database thread) while the block runs."""
    queries: list[str] = []

    def record(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    in_db_thread(lambda: connection.execute_wrappers.append(record))
    try:
        yield queries
    finally:
        in_db_thread(lambda: connection.execute_wrappers.remove(record))


@contextlib.contextmanager
def database_down():
    """Every query of the proxy's database thread fails as if the server were gone."""

    def fail(execute, sql, params, many, context):
        raise OperationalError("could not connect to server: secret-host:5432 refused")

    in_db_thread(lambda: connection.execute_wrappers.append(fail))
    try:
        yield
    finally:
        in_db_thread(lambda: connection.execute_wrappers.remove(fail))


@pytest.fixture
def own_redis():
    """A private redis-server on a free port (so that stopping it disturbs nobody else)."""
    server = OwnRedis().start()
    yield server
    server.stop()
