import gzip
import json
import uuid
from datetime import UTC, datetime

import brotli
import pytest

from dispatch.transform import decode_body, event_to_payload, merge_openai_sse
from instrumentation.events import Event
from tests.dispatch.factories import CHAT_REQUEST, chat_event, stream_event
from tests.support.fake_upstream import CHAT_COMPLETION, sse_chunks

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

RECEIVED = datetime(2025, 11, 27, 10, 0, 1, 234000, tzinfo=UTC)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_bodies_are_decoded(encoding):
    raw = b'{"ok": true}'
    body = gzip.compress(raw) if encoding == "gzip" else brotli.compress(raw)
    assert decode_body(body, {"content-encoding": [encoding]}) == raw


def test_a_body_cut_at_the_capture_cap_decodes_as_far_as_it_goes():
    raw = json.dumps({"text": "x" * 50000, "n": list(range(20000))}).encode()
    cut = gzip.compress(raw)[:20000]
    decoded = decode_body(cut, {"Content-Encoding": ["gzip"]})
    assert decoded and raw.startswith(decoded)


def test_undecodable_bodies_and_unknown_encodings_give_none():
    assert decode_body(b"not gzip at all", {"Content-Encoding": ["gzip"]}) is None
    assert decode_body(b"abc", {"Content-Encoding": ["zstd"]}) is None
    assert decode_body(None, {}) is None
    assert decode_body(b"plain", {}) == b"plain"


def test_an_openai_stream_merges_into_one_completion_with_usage():
    merged = merge_openai_sse("".join(sse_chunks()))
    assert merged == {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello from upstream"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def test_streamed_tool_call_arguments_are_joined():
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    calls = [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q"'}},
        {"index": 0, "function": {"arguments": ': "x"}'}},
    ]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]} for call in calls
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    message = merge_openai_sse(text)["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    ]
    assert message["content"] is None


def test_text_that_is_not_an_openai_stream_is_not_merged():
    assert merge_openai_sse("hello\nworld") is None
    assert merge_openai_sse('data: {"foo": 1}\n\ndata: [DONE]\n\n') is None


def test_a_chat_completion_becomes_the_reference_payload_with_the_fixes():
    event = chat_event(request_id="req-42")
    payload = event_to_payload(event, received_at=RECEIVED)
    assert payload == {
        "type": "llm",
        "event": "start",
        "runId": str(uuid.uuid5(uuid.UUID("5b0c6f3e-9d7a-4c1e-8f2b-6a4d3e2c1b0a"), "req-42")),
        "name": "gpt-4o-mini",
        "timestamp": "2025-11-27T10:00:01.234Z",
        "input": CHAT_REQUEST,
        "output": CHAT_COMPLETION,
        "tokensUsage": {"prompt": 9, "completion": 3},
        "metadata": {
            "method": "POST",
            "path": "/v1/chat/completions",
            "status": 200,
            "duration_ms": 1234,
            "request_id": "req-42",
        },
        "log_id": 0,
    }


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_responses_give_the_same_output(encoding):
    assert event_to_payload(chat_event(encoding=encoding))["output"] == CHAT_COMPLETION


def test_a_streamed_completion_is_merged_and_its_final_usage_read():
    payload = event_to_payload(stream_event())
    assert payload["output"]["choices"][0]["message"]["content"] == "Hello from upstream"
    assert payload["tokensUsage"] == {"prompt": 9, "completion": 3}
    assert payload["name"] == "gpt-4o-mini"


def test_the_run_id_is_stable_across_redeliveries_and_differs_between_requests():
    event = chat_event(request_id="req-7")
    again = Event.from_json(event.to_json())
    assert event_to_payload(event)["runId"] == event_to_payload(again)["runId"]
    assert event_to_payload(chat_event(request_id="req-8"))["runId"] != event_to_payload(event)["runId"]


def test_only_post_events_are_dispatched():
    assert event_to_payload(chat_event(method="GET")) is None
    assert event_to_payload(chat_event(method="OPTIONS")) is None


def test_binary_multipart_and_plain_text_outputs_follow_the_reference():
    binary = chat_event(response_headers={"Content-Type": ["audio/mpeg"]}, response_body=b"\xff\xfe\x00\x81")
    multipart = chat_event(response_headers={"Content-Type": ["multipart/form-data"]}, response_body=b"--x")
    text = chat_event(response_headers={"Content-Type": ["text/plain"]}, response_body=b"just text")
    assert event_to_payload(binary)["output"] == "<binary response omitted>"
    assert event_to_payload(multipart)["output"] == "<multipart response omitted>"
    assert event_to_payload(text)["output"] == "just text"
    assert "tokensUsage" not in event_to_payload(text)


def test_verbose_mode_adds_the_response_headers(settings):
    settings.LLM_PROXY_DISPATCHER_VERBOSE = True
    headers = event_to_payload(chat_event())["metadata"]["response_headers"]
    assert headers["Content-Type"] == "application/json"
