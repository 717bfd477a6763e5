"""Property-based tests: whatever a client sends to /v1 or /manage, the answer is never a 5xx of ours and the
server logs no error.

Hypothesis builds requests from arbitrary bytes, JSON with lone surrogates and non-finite numbers, bodies that
claim an encoding they do not have (or really have it), and every content type a client might send. The runs
are derandomized so that CI sees the same examples every time; widen `max_examples` locally to hunt.
"""

import gzip
import logging
import zlib

import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MANAGEMENT_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON texts a strict parser refuses or a naive encoder chokes on.
AWKWARD_JSON = st.sampled_from(
    [
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "\\udfff", "temperature": 1e999}',
        b'{"model": "gpt-4o-mini", "temperature": NaN, "top_p": Infinity}',
        b'{"model": "gpt-4o-mini", "messages": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}',
        b'{"mod\\u0065l": "gpt-4o-mini"}',
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe{\x00",
        b"",
    ]
)
BODIES = st.one_of(st.binary(max_size=2048), AWKWARD_JSON)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "garbage/;;=",
    ]
)
ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "identity", "gzip, br", "x-unknown"])


def _encode(body: bytes, encoding: str | None, honest: bool) -> bytes:
    """The body compressed as `encoding` says when `honest`, else left as it is (a lying header)."""
    if not honest or encoding is None:
        return body
    for part in [p.strip() for p in encoding.split(",")]:
        if part == "gzip":
            body = gzip.compress(body)
        elif part == "deflate":
            body = zlib.compress(body)
        elif part == "br":
            body = brotli.compress(body)
    return body


@st.composite
def requests(draw, paths, auth):
    encoding = draw(ENCODINGS)
    headers = {"Authorization": draw(auth)}
    content_type = draw(CONTENT_TYPES)
    if content_type:
        headers["Content-Type"] = content_type
    if encoding:
        headers["Content-Encoding"] = encoding
    body = _encode(draw(BODIES), encoding, draw(st.booleans()))
    return draw(st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH", "GET", "DELETE"])), draw(paths), headers, body


class ServerErrors(logging.Handler):
    """Collects ERROR records logged anywhere in this process (the live server runs in a thread here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("aiohttp.server"):  # the fake upstream's own server, not ours
            self.records.append(record)


@pytest.fixture
def server_errors():
    handler = ServerErrors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def _assert_answered_well(response: httpx.Response, server_errors: ServerErrors) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.content:
        assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert not server_errors.records, [r.getMessage() for r in server_errors.records]


def _fuzz(base_url: str, paths, auth, server_errors: ServerErrors) -> None:
    @FUZZ
    @given(request=requests(paths, auth))
    def check(request):
        method, path, headers, body = request
        with httpx.Client(base_url=base_url, timeout=10) as client:
            response = client.request(method, path, headers=headers, content=body)
        _assert_answered_well(response, server_errors)

    check()


def test_nothing_a_client_sends_to_v1_is_a_server_error(proxy_server, token_pair, server_errors):
    auth = st.sampled_from(["", "Bearer sk-not-a-real-token", f"Bearer {token_pair[1]}", "Basic Zm9vOmJhcg=="])
    paths = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/x"])
    _fuzz(proxy_server.url, paths, auth, server_errors)


def test_nothing_sent_to_the_management_api_is_a_server_error(proxy_server, project, server_errors):
    auth = st.sampled_from([f"Bearer {MANAGEMENT_TOKEN}", f"Bearer {MANAGEMENT_TOKEN}", "", "Bearer wrong"])
    paths = st.sampled_from(
        ["/manage/projects", f"/manage/projects/{project.id}", "/manage/tokens", "/manage/cache/purge", "/manage/x"]
    )
    _fuzz(proxy_server.url, paths, auth, server_errors)
