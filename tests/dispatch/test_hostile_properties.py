"""Property-based: whatever bytes, JSON oddities and (lying) encodings an event carries, every backend's payload
and every FILE_EVENT_LOG line is built without raising and encodes to JSON a strict reader accepts."""

import gzip
import json
import zlib

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.backends import create_backend
from dispatch.transform import REQUEST_ENCODING_HEADER, event_to_payload
from instrumentation import jsonsafe
from instrumentation.events import Event
from instrumentation.file_log import file_event_line
from tests.support.fake_services import HELICONE_KEY, LUNARY_KEY

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "identity": lambda body: body,
}
ENCODINGS = ["", "gzip", "x-gzip", "deflate", "br", "identity", "zstd", "gzip, br", "br, gzip", "gzip, gzip"]
CONTENT_TYPES = ["application/json", "text/event-stream", "text/plain", "audio/mpeg", "multipart/form-data", ""]
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def strict_loads(data: bytes):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(data, parse_constant=refuse)


# Text with lone surrogates, and numbers JSON has no words for: what clients and upstreams can write as \ud800,
# 1e999, NaN or Infinity.
# (st.text() would rarely draw a surrogate, so the characters are joined by hand.)
hostile_text = st.lists(st.characters(codec=None, categories=None) | st.characters(categories=["Cs"]), max_size=20).map(
    "".join
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=20,
)


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "sse", "deep", "number"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=5000))
        return b"[" * depth + b"]" * draw(st.integers(min_value=0, max_value=depth))
    if kind == "number":
        return draw(st.sampled_from([b"1e999", b"[NaN]", b'{"usage":{"prompt_tokens":1e999}}', b"[-Infinity]"]))
    text = json.dumps(draw(json_values), ensure_ascii=True)  # writes \ud800, NaN and Infinity as given
    if kind == "sse":
        chunk = {"choices": [{"index": 0, "delta": {"content": draw(hostile_text)}}], "x": draw(json_values)}
        text = f"data: {text}\n\ndata: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    return text.encode()


@st.composite
def encoded(draw) -> tuple[bytes, str]:
    """A body and the Content-Encoding said of it: true, or a lie (the body left as it was)."""
    body, encoding = draw(bodies()), draw(st.sampled_from(ENCODINGS))
    if draw(st.booleans()):
        for name in (part.strip() for part in encoding.split(",") if part.strip()):
            body = ENCODERS.get(name, lambda data: data)(body)
    return body, encoding


@st.composite
def events(draw) -> Event:
    (request, request_encoding), (response, response_encoding) = draw(encoded()), draw(encoded())
    headers = {"Content-Type": [draw(st.sampled_from(CONTENT_TYPES))]}
    if response_encoding:
        headers["Content-Encoding"] = [response_encoding]
    if request_encoding:
        headers[REQUEST_ENCODING_HEADER] = [request_encoding]
    headers["X-Proxy-Project-Id"] = [draw(hostile_text)]
    return Event(
        request_id=draw(hostile_text),
        method=draw(st.sampled_from(["POST", "POST", "GET"])),
        path="/v1/chat/completions",
        status=draw(st.sampled_from([200, 400, 500])),
        duration_ns=draw(st.integers(min_value=0, max_value=10**12)),
        response_headers=headers,
        response_body=draw(st.none() | st.just(response)),
        request_body=draw(st.none() | st.just(request)),
    )


@pytest.fixture(scope="module")
def backends():
    made = [
        create_backend("file", endpoint="/tmp/unused.jsonl"),
        create_backend("lunary", api_key=LUNARY_KEY),
        create_backend("helicone", api_key=HELICONE_KEY),
        create_backend("usage"),
    ]
    yield made
    for backend in made:
        backend.close()


@PROPERTY_SETTINGS
@given(event=events())
def test_every_backend_payload_of_any_event_encodes_to_strict_json(backends, event):
    assert_valid(event_to_payload(event))
    for backend in backends:
        assert_valid(backend.payload(event))


@PROPERTY_SETTINGS
@given(event=events())
def test_every_file_event_log_line_of_any_event_is_strict_json(event):
    line = strict_loads(jsonsafe.dumps_bytes(file_event_line(event), sort_keys=True))
    assert set(line) >= {"request_id", "request_body", "response_body", "status"}


@PROPERTY_SETTINGS
@given(value=json_values)
def test_the_encoder_writes_any_parsed_value_as_strict_json(value):
    assert_valid(value)
    assert strict_loads(jsonsafe.dumps(value).encode("utf-8")) == strict_loads(jsonsafe.dumps_bytes(value))


def assert_valid(payload) -> None:
    if payload is not None:
        strict_loads(jsonsafe.dumps_bytes(payload))
