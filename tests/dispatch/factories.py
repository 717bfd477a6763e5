"""Events as the instrumentation middleware records them for the fake upstream's answers."""

import gzip
import json
import uuid

import brotli

from instrumentation.events import Event
from tests.support.fake_upstream import CHAT_COMPLETION, sse_chunks

CHAT_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.2}
STREAM_REQUEST = {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
FIRST_CHUNK_AT = "2025-11-27T10:00:00.180000000Z"


def chat_event(*, request_id: str | None = None, encoding: str = "", status: int = 200, **overrides) -> Event:
    """A non-streamed chat completion (optionally gzip/br encoded, as a compressing upstream sends it)."""
    body = json.dumps(CHAT_COMPLETION).encode()
    headers = {"Content-Type": ["application/json"], "X-Request-Id": [request_id or "req-1"]}
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "br":
        body = brotli.compress(body)
    if encoding:
        headers["Content-Encoding"] = [encoding]
    fields = dict(
        request_id=request_id or str(uuid.uuid4()),
        method="POST",
        path="/v1/chat/completions",
        status=status,
        duration_ns=1_234_000_000,
        response_headers=headers,
        response_body=body,
        request_body=json.dumps(CHAT_REQUEST).encode(),
    )
    return Event(**{**fields, **overrides})


def stream_event(*, request_id: str | None = None, first_chunk_at: str | None = FIRST_CHUNK_AT, **overrides) -> Event:
    """A streamed chat completion: the raw SSE the fake upstream sends, with the proxy's first-chunk header."""
    headers = {"Content-Type": ["text/event-stream"]}
    if first_chunk_at:
        headers["X-Proxy-First-Chunk-At"] = [first_chunk_at]
    fields = dict(
        request_id=request_id or str(uuid.uuid4()),
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=950_000_000,
        response_headers=headers,
        response_body="".join(sse_chunks()).encode(),
        request_body=json.dumps(STREAM_REQUEST).encode(),
    )
    return Event(**{**fields, **overrides})
