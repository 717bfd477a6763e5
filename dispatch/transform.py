"""Event -> payload (reference §6.2, with its bugs fixed), and the body helpers FILE_EVENT_LOG reuses.

Contract 7: `decode_body`, `merge_openai_sse` and `event_to_payload` keep their signatures.
Fixed against the reference: `output` is the upstream JSON itself (not a string wrapped in an object),
`tokensUsage` is read from `usage` (also from a stream's final chunk), `name` is the model, and
`runId` is derived from the request id, so a redelivered event maps to the same run.
Bodies are bounded (`dispatch/bodies.py`): every decompression stops at OBSERVABILITY_MAX_DECODED_BYTES and
says it was cut (`metadata.truncated`), and a request body is decoded only when the proxy recorded its
Content-Encoding.
"""

import uuid
from datetime import UTC, datetime, timedelta

import ujson
from django.conf import settings

# Re-exported: the backends, FILE_EVENT_LOG and the tests take the body helpers from here.
from dispatch.bodies import Body, decode_body, decode_capped, parse_json  # noqa: F401
from dispatch.jsonsafe import clean_text
from instrumentation.events import Event

# Never change: a redelivered event must map to the ids the services already stored.
RUN_ID_NAMESPACE = uuid.UUID("5b0c6f3e-9d7a-4c1e-8f2b-6a4d3e2c1b0a")
FIRST_CHUNK_HEADER = "X-Proxy-First-Chunk-At"
# The event-only header the proxy adds when the client's request had a Content-Encoding: request bodies are
# decoded only when it says so (never by sniffing magic bytes, which a client chooses).
REQUEST_ENCODING_HEADER = "X-Proxy-Request-Content-Encoding"
REFUSED_HEADER = "X-Proxy-Refused"  # event-only, with the reason, on requests refused before the token check
MAX_TOKEN_COUNT = 2**53  # the largest integer every JSON reader (JavaScript's included) holds exactly
# ujson parses and writes these small documents about twice as fast as the standard library.
loads = ujson.loads


# --- server-sent events -----------------------------------------------------------


def merge_openai_sse(text: str) -> dict | None:
    """One completion object from an OpenAI server-sent-event stream; None when `text` is not one.

    Chat chunks become a `chat.completion` (content deltas joined, tool-call arguments joined,
    the last finish_reason, `usage` from the final chunk); legacy completion chunks become a
    `text_completion`; a Responses API stream yields its `response.completed` object.
    Only the first OBSERVABILITY_MAX_DECODED_BYTES characters are read, so an endless stream costs bounded time.
    """
    chunks = _sse_json_chunks(text[: settings.OBSERVABILITY_MAX_DECODED_BYTES])
    if not chunks:
        return None
    for chunk in reversed(chunks):
        if chunk.get("type") == "response.completed" and isinstance(chunk.get("response"), dict):
            return chunk["response"]
    if not any("choices" in chunk or "usage" in chunk for chunk in chunks):
        return None
    try:
        return _merge_chat_chunks(chunks)
    except (
        AttributeError,
        TypeError,
        ValueError,
        OverflowError,
    ):  # chunks shaped unlike OpenAI's: leave the text as it is
        return None


def _sse_json_chunks(text: str) -> list[dict]:
    lines = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    lines = [line for line in lines if line.startswith("{")]  # not [DONE]
    try:
        # One parser call for the whole stream: a long answer has one chunk per token.
        chunks = loads("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):  # a broken line (e.g. cut at the capture cap): parse one by one, skip it
        chunks = []
        for line in lines:
            try:
                chunks.append(loads(line))
            except (ValueError, RecursionError):
                continue
    return [chunk for chunk in chunks if isinstance(chunk, dict)]


def _merge_chat_chunks(chunks: list[dict]) -> dict:
    meta = next((chunk for chunk in chunks if chunk.get("id")), chunks[0])
    choices: dict[int, dict] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index") or 0
            state = choices.get(index)
            if state is None:
                state = choices[index] = {"content": []}
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    state["content"].append(content)
                if content is None or len(delta) > 1:
                    _merge_delta(state, delta)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
            if isinstance(choice.get("text"), str):
                state.setdefault("text", []).append(choice["text"])
    legacy = any("text" in state for state in choices.values())
    merged = {
        "id": meta.get("id"),
        "object": "text_completion" if legacy else "chat.completion",
        "created": meta.get("created"),
        "model": meta.get("model"),
        "choices": [_finish_choice(index, choices[index], legacy) for index in sorted(choices)],
    }
    if meta.get("system_fingerprint"):
        merged["system_fingerprint"] = meta["system_fingerprint"]
    if isinstance(usage, dict):
        merged["usage"] = usage
    return merged


def _merge_delta(state: dict, delta: dict) -> None:
    """The rarer parts of a delta: role, refusal, tool calls."""
    if delta.get("role"):
        state["role"] = delta["role"]
    if isinstance(delta.get("refusal"), str):
        state.setdefault("refusal", []).append(delta["refusal"])
    for call in delta.get("tool_calls") or ():
        _merge_tool_call(state.setdefault("tool_calls", {}), call)


def _merge_tool_call(calls: dict, call: dict) -> None:
    slot = calls.setdefault(int(call.get("index") or 0), {"arguments": []})
    for key in ("id", "type"):
        if call.get(key):
            slot[key] = call[key]
    function = call.get("function") or {}
    if function.get("name"):
        slot["name"] = function["name"]
    if isinstance(function.get("arguments"), str):
        slot["arguments"].append(function["arguments"])


def _finish_choice(index: int, state: dict, legacy: bool) -> dict:
    if legacy:
        return {"index": index, "text": "".join(state.get("text", [])), "finish_reason": state.get("finish_reason")}
    message: dict = {"role": state.get("role", "assistant"), "content": "".join(state.get("content", []))}
    if "refusal" in state:
        message["refusal"] = "".join(state["refusal"])
    if state.get("tool_calls"):
        message["tool_calls"] = [
            {
                "id": slot.get("id"),
                "type": slot.get("type", "function"),
                "function": {"name": slot.get("name"), "arguments": "".join(slot["arguments"])},
            }
            for _, slot in sorted(state["tool_calls"].items())
        ]
        message["content"] = message["content"] or None
    return {"index": index, "message": message, "finish_reason": state.get("finish_reason")}


# --- event views shared by the backends ----------------------------------------


def run_id(event: Event) -> str:
    """A UUID (v5) derived from the request id: the same event always gets the same id."""
    seed = event.request_id or event.to_json()
    return str(uuid.uuid5(RUN_ID_NAMESPACE, clean_text(seed)))  # uuid5 hashes UTF-8: no lone surrogate


def is_refused(event: Event) -> bool:
    """The proxy refused the request before accepting its token: no LLM call, no bodies in the event."""
    return bool(event.header(REFUSED_HEADER))


def request_body(event: Event) -> Body:
    """The request body, decoded only when the proxy recorded the client's Content-Encoding."""
    return decode_capped(event.request_body, _header_values(event, REQUEST_ENCODING_HEADER))


def response_body(event: Event) -> Body:
    return decode_capped(event.response_body, _header_values(event, "Content-Encoding"))


def _header_values(event: Event, name: str) -> str:
    """All values of a header, joined with commas (a header may come as several lines)."""
    lower = name.lower()
    for key, values in event.response_headers.items():
        if key.lower() == lower:
            return ",".join(values)
    return ""


def request_json(event: Event):
    """The request body parsed as JSON, or None."""
    return request_body(event).json()


def response_text(event: Event) -> str | None:
    """The decoded response body as text, or None when absent, undecodable or not UTF-8."""
    return response_body(event).text()


def is_stream(event: Event, request=None) -> bool:
    if "text/event-stream" in event.header("Content-Type").lower():
        return True
    request = request_json(event) if request is None else request
    return isinstance(request, dict) and request.get("stream") is True


def response_output(event: Event, body: Body | None = None):
    """The response as JSON: the upstream object, a merged stream, text, or a placeholder (reference §6.2)."""
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


def tokens_usage(output) -> dict | None:
    """`{prompt, completion}` from an OpenAI `usage` (chat/completions or the Responses API)."""
    usage = output.get("usage") if isinstance(output, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if not is_token_count(prompt) and not is_token_count(completion):
        return None
    return {
        "prompt": prompt if is_token_count(prompt) else 0,
        "completion": completion if is_token_count(completion) else 0,
    }


def is_token_count(value) -> bool:
    # An upstream's number, not trusted: a bool, a negative or a 4,000-digit count would break the rollups.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT


def model_name(request, output) -> str | None:
    for source in (request, output):
        if isinstance(source, dict) and isinstance(source.get("model"), str) and source["model"]:
            return source["model"]
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


def event_to_payload(event: Event, *, received_at: datetime | None = None) -> dict | None:
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


def _metadata(event: Event, truncated: list[str]) -> dict:
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
