"""Event -> payload: the reference's generic EventPayload (type, event, runId, name, timestamp, input, output,
tokensUsage, metadata, log_id), with its bugs fixed, and the event views the backends share.

Fixed against the reference: `output` is the upstream JSON itself (not a string wrapped in an object),
`tokensUsage` is read from `usage` (also from a stream's final chunk), `name` is the model, and
`runId` is derived from the request id, so a redelivered event maps to the same run.
Bodies are bounded (`instrumentation/bodies.py`): every decompression stops at OBSERVABILITY_MAX_DECODED_BYTES and
says it was cut (`metadata.truncated`), and a request body is decoded only when the proxy recorded its
Content-Encoding.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from instrumentation.bodies import REQUEST_ENCODING_HEADER, Body, decode_body, request_body, response_body
from instrumentation.events import Event
from instrumentation.jsonsafe import clean_text
from instrumentation.sse import merge_openai_sse, tokens_usage

# Kept importable from here, where they lived before the body helpers moved to `instrumentation`: the
# external test harness calls `dispatch.transform.decode_body`, `merge_openai_sse` and `event_to_payload`,
# so their names and signatures here must not change.
__all__ = ["REQUEST_ENCODING_HEADER", "decode_body", "event_to_payload", "merge_openai_sse"]

# Never change: a redelivered event must map to the ids the services already stored.
RUN_ID_NAMESPACE = uuid.UUID("5b0c6f3e-9d7a-4c1e-8f2b-6a4d3e2c1b0a")
FIRST_CHUNK_HEADER = "X-Proxy-First-Chunk-At"
REFUSED_HEADER = "X-Proxy-Refused"  # event-only, with the reason, on requests refused before the token check


# --- event views shared by the backends ----------------------------------------


def run_id(event: Event) -> str:
    """A UUID (v5) derived from the request id: the same event always gets the same id."""
    seed = event.request_id or event.to_json()
    return str(uuid.uuid5(RUN_ID_NAMESPACE, clean_text(seed)))  # uuid5 hashes UTF-8: no lone surrogate


def is_refused(event: Event) -> bool:
    """The proxy refused the request before accepting its token: no LLM call, no bodies in the event."""
    return bool(event.header(REFUSED_HEADER))


def request_json(event: Event) -> Any:
    """The request body parsed as JSON, or None."""
    return request_body(event).json()


def response_text(event: Event) -> str | None:
    """The decoded response body as text, or None when absent, undecodable or not UTF-8."""
    return response_body(event).text()


def is_stream(event: Event, request: Any = None) -> bool:
    if "text/event-stream" in event.header("Content-Type").lower():
        return True
    request = request_json(event) if request is None else request
    return isinstance(request, dict) and request.get("stream") is True


def response_output(event: Event, body: Body | None = None) -> Any:
    """The response as JSON: the upstream object, a merged stream, text, or a placeholder for multipart and binary
    bodies, as the reference writes them."""
    if event.response_body is None:
        return None
    if "multipart" in event.header("Content-Type").lower():
        return "<multipart response omitted>"
    body = response_body(event) if body is None else body
    if body.data is None:
        return "<binary response omitted>"
    parsed = body.json()
    if parsed is not None:
        return parsed
    text = body.text()
    if text is None:
        return "<binary response omitted>"
    merged = merge_openai_sse(text)
    return merged if merged is not None else text


def model_name(request: Any, output: Any) -> str | None:
    for source in (request, output):
        if isinstance(source, dict) and isinstance(source.get("model"), str) and source["model"]:
            model: str = source["model"]
            return model
    return None


def event_times(event: Event, received_at: datetime | None = None) -> tuple[datetime, datetime]:
    """(start, end) of the request: end is when the event reached the bus, start = end - duration."""
    end = received_at or datetime.now(UTC)
    return end - timedelta(microseconds=event.duration_ns // 1000), end


def first_chunk_at(event: Event) -> datetime | None:
    raw = event.header(FIRST_CHUNK_HEADER)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def iso(moment: datetime) -> str:
    """RFC 3339, UTC, millisecond precision (what Lunary and JavaScript clients produce)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the generic payload ----------------------------------------------------------


def event_to_payload(event: Event, *, received_at: datetime | None = None) -> dict[str, Any] | None:
    """The reference's EventPayload for a POST event (None for other methods, which are not dispatched)."""
    if event.method.upper() != "POST":
        return None
    request_raw, response_raw = request_body(event), response_body(event)
    request = request_raw.json()
    output = response_output(event, response_raw)
    payload = {
        "type": "llm",
        "event": "start",  # the reference's value, kept for readers of its files; Lunary gets start + end
        "runId": run_id(event),
        "name": model_name(request, output),
        "timestamp": iso(event_times(event, received_at)[1]),
        "input": request if request is not None else (request_raw.text() or None),
        "output": output,
        "tokensUsage": tokens_usage(output),
        "metadata": _metadata(event, truncated_parts(request_raw, response_raw)),
        "log_id": event.log_id,
    }
    return {key: value for key, value in payload.items() if value is not None}


def truncated_parts(request: Body, response: Body) -> list[str]:
    """Which bodies decoding cut at OBSERVABILITY_MAX_DECODED_BYTES: `request_body`, `response_body`."""
    return [name for name, body in (("request_body", request), ("response_body", response)) if body.truncated]


def _metadata(event: Event, truncated: list[str]) -> dict[str, Any]:
    metadata = {
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "duration_ms": event.duration_ns // 1_000_000,
        "request_id": event.request_id,
    }
    if truncated:
        metadata["truncated"] = truncated
    if settings.LLM_PROXY_DISPATCHER_VERBOSE and event.response_headers:
        metadata["response_headers"] = {
            name: values[0] if len(values) == 1 else list(values) for name, values in event.response_headers.items()
        }
    return metadata
