"""Hostile bodies in events: compressed bombs, lying encodings, malformed SSE, values JSON cannot hold.

Every decompression stops at OBSERVABILITY_MAX_DECODED_BYTES and says so; every payload encodes to JSON
that a strict reader accepts; nothing here raises.
"""

import gzip
import json
import tracemalloc
import zlib

import brotli
import pytest

from dispatch.backends import create_backend
from dispatch.transform import event_to_payload, request_json, response_output
from instrumentation import jsonsafe
from instrumentation.bodies import REQUEST_ENCODING_HEADER, decode_capped
from instrumentation.events import Event
from instrumentation.sse import merge_openai_sse
from tests.dispatch.factories import CHAT_REQUEST, chat_event, stream_event
from tests.support.bombs import brotli_json_bomb, gzip_json_bomb
from tests.support.fake_services import HELICONE_KEY, LUNARY_KEY

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

CAP = 1048576


def strict_loads(text: str | bytes):
    """json.loads that refuses NaN and Infinity (Python's json accepts them by default)."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip_json_bomb(60)


@pytest.fixture(scope="module")
def br_bomb() -> bytes:
    return brotli_json_bomb(1024)


def peak_allocated(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bomb_event(*, request_body=None, response_body=None, request_encoding="", response_encoding="", **headers):
    response_headers = {"Content-Type": ["application/json"], **headers}
    if request_encoding:
        response_headers[REQUEST_ENCODING_HEADER] = [request_encoding]
    if response_encoding:
        response_headers["Content-Encoding"] = [response_encoding]
    return Event(
        request_id="req-bomb",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=1_000_000,
        response_headers=response_headers,
        response_body=response_body if response_body is not None else json.dumps({"ok": True}).encode(),
        request_body=request_body if request_body is not None else json.dumps(CHAT_REQUEST).encode(),
    )


# --- bounded decoding -----------------------------------------------------------------


def test_a_60_mb_gzip_bomb_decodes_to_the_cap_and_is_marked_truncated(gzip_bomb):
    assert len(gzip_bomb) < 65536
    decoded, peak = peak_allocated(decode_capped, gzip_bomb, "gzip")
    assert decoded.truncated and len(decoded.data) == CAP
    assert peak < 3 * CAP


def test_a_1_gb_brotli_bomb_decodes_to_the_cap_and_is_marked_truncated(br_bomb):
    assert len(br_bomb) < 262144
    decoded, peak = peak_allocated(decode_capped, br_bomb, "br")
    assert decoded.truncated and len(decoded.data) == CAP
    assert peak < 3 * CAP


def test_the_cap_is_the_setting(settings, gzip_bomb):
    settings.OBSERVABILITY_MAX_DECODED_BYTES = 5000
    decoded = decode_capped(gzip_bomb, "x-gzip")
    assert decoded.truncated and len(decoded.data) == 5000


def test_each_stage_of_stacked_encodings_is_bounded(br_bomb):
    # "br, gzip": br applied first, so gzip is undone first and its output (the br bomb) is then bounded too.
    decoded, peak = peak_allocated(decode_capped, gzip.compress(br_bomb), "br, gzip")
    assert decoded.truncated and len(decoded.data) == CAP
    assert peak < 4 * CAP
    twice = decode_capped(zlib.compress(gzip_json_bomb(3)), "gzip, deflate")
    assert twice.truncated and len(twice.data) == CAP


def test_a_body_that_fits_is_whole_and_not_truncated():
    raw = json.dumps({"text": "x" * 1000}).encode()
    for encoding, packed in (("gzip", gzip.compress(raw)), ("br", brotli.compress(raw)), ("", raw)):
        assert decode_capped(packed, encoding) == (raw, False)


def test_encodings_that_lie_give_a_placeholder_never_an_error():
    plain = json.dumps({"ok": True}).encode()
    for encoding in ("gzip", "br", "deflate", "zstd", "gzip, br", "gzip," * 10):
        event = bomb_event(response_body=plain, response_encoding=encoding)
        assert response_output(event) == "<binary response omitted>"
        strict_loads(jsonsafe.dumps(event_to_payload(event)))


def test_a_request_body_is_never_decoded_by_sniffing_its_magic_bytes(gzip_bomb):
    event = bomb_event(request_body=gzip_bomb)  # gzip bytes, but the proxy recorded no Content-Encoding
    assert request_json(event) is None
    payload = event_to_payload(event)
    assert "input" not in payload and "truncated" not in payload["metadata"]


def test_a_request_body_is_decoded_when_the_proxy_recorded_its_content_encoding():
    event = bomb_event(request_body=gzip.compress(json.dumps(CHAT_REQUEST).encode()), request_encoding="gzip")
    assert request_json(event) == CHAT_REQUEST
    assert event_to_payload(event)["input"] == CHAT_REQUEST


def test_every_backend_payload_of_a_request_bomb_stays_small_and_says_it_was_cut(gzip_bomb, settings):
    event = bomb_event(request_body=gzip_bomb, request_encoding="gzip")
    payloads = backend_payloads(event)
    for name, encoded in payloads.items():
        assert len(encoded) < 3 * CAP, name
    file_payload = strict_loads(payloads["file"])
    assert file_payload["metadata"]["truncated"] == ["request_body"]
    assert isinstance(file_payload["input"], str) and len(file_payload["input"]) <= CAP  # cut JSON: its text
    start = strict_loads(payloads["lunary"])["events"][0]
    assert start["metadata"]["truncated"] == "request_body"
    meta = strict_loads(payloads["helicone"])["providerRequest"]["meta"]
    assert meta["Helicone-Property-Truncated"] == "request_body"


def test_every_backend_payload_of_a_response_bomb_stays_small_and_says_it_was_cut(br_bomb):
    event = bomb_event(response_body=br_bomb, response_encoding="br")
    payloads = backend_payloads(event)
    for name, encoded in payloads.items():
        assert len(encoded) < 3 * CAP, name
    file_payload = strict_loads(payloads["file"])
    assert file_payload["metadata"]["truncated"] == ["response_body"]
    assert file_payload["output"].startswith('{"id":"chatcmpl-bomb"') and len(file_payload["output"]) == CAP
    assert strict_loads(payloads["helicone"])["providerRequest"]["meta"]["Helicone-Property-Truncated"] == (
        "response_body"
    )
    assert strict_loads(payloads["usage"])["prompt_tokens"] == 0


def backend_payloads(event: Event) -> dict[str, bytes]:
    """Each backend's payload for `event`, encoded as it would be sent."""
    encoded = {}
    for name, key in (("file", ""), ("lunary", LUNARY_KEY), ("helicone", HELICONE_KEY), ("usage", "")):
        backend = create_backend(name, endpoint="/tmp/unused.jsonl" if name == "file" else "", api_key=key)
        try:
            encoded[name] = jsonsafe.dumps_bytes(backend.payload(event))
        finally:
            backend.close()
    return encoded


# --- a hostile upstream's SSE -----------------------------------------------------------


def test_a_gzipped_stream_of_a_million_tiny_chunks_merges_only_what_fits_under_the_cap():
    chunk = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(packer.compress(chunk * 1000) for _ in range(1000)) + packer.flush()
    event = stream_event(response_body=body)
    event.response_headers["Content-Encoding"] = ["gzip"]
    payload = event_to_payload(event)
    content = payload["output"]["choices"][0]["message"]["content"]
    assert 0 < len(content) <= CAP // len(chunk) + 1
    assert payload["metadata"]["truncated"] == ["response_body"]
    helicone = create_backend("helicone", endpoint="", api_key=HELICONE_KEY)
    text_body = helicone.payload(event)["providerResponse"]["textBody"]  # the raw SSE Helicone reads usage from
    helicone.close()
    assert CAP <= len(text_body) <= CAP + len("\n\ndata: [DONE]\n\n")


def test_a_plain_body_longer_than_the_cap_is_cut_and_marked_too(settings):
    settings.OBSERVABILITY_MAX_DECODED_BYTES = 1000
    event = bomb_event(response_body=json.dumps({"text": "x" * 5000}).encode())
    payload = event_to_payload(event)
    assert payload["metadata"]["truncated"] == ["response_body"] and len(payload["output"]) == 1000


def test_a_10_mb_sse_line_is_read_only_up_to_the_cap():
    text = 'data: {"choices":[{"delta":{"content":"' + "x" * 10_000_000 + '"}}]}\n\n'
    assert merge_openai_sse(text) is None  # the line is cut at the cap: not JSON, so no merge


def test_malformed_sse_becomes_text_output():
    body = b"event: ping\n\nid: 3\n\ndata: {broken\n\ndata: [1,2\n\n: comment\n\n"
    payload = event_to_payload(stream_event(response_body=body))
    assert payload["output"] == body.decode()
    strict_loads(jsonsafe.dumps(payload))


def test_a_stream_that_never_ended_is_merged_up_to_where_it_was_cut():
    body = stream_event().response_body
    cut = body[: body.index(b"[DONE]") - 30]  # cut inside the last chunk, as the capture cap cuts an endless stream
    payload = event_to_payload(stream_event(response_body=cut))
    assert payload["output"]["object"] == "chat.completion"
    helicone = create_backend("helicone", endpoint="", api_key=HELICONE_KEY)
    assert helicone.payload(stream_event(response_body=cut))["providerResponse"]["textBody"].endswith("[DONE]\n\n")
    helicone.close()


# --- values JSON cannot hold -----------------------------------------------------------------


def test_the_encoder_turns_lone_surrogates_non_finite_numbers_and_deep_nesting_into_valid_json():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    value = {
        "lone": json.loads('"a\\ud800b"'),
        "key\udfff": 1,
        "numbers": [json.loads("1e999"), float("nan"), float("-inf"), 2**70, 10**400],
        "deep": deep,
        "other": (b"bytes", {1: "int key"}),
    }
    text = jsonsafe.dumps(value)
    parsed = strict_loads(text.encode("utf-8"))
    assert parsed["lone"] == "a\ufffdb" and parsed["key\ufffd"] == 1
    assert parsed["numbers"][:3] == [None, None, None] and parsed["numbers"][3] == 2**70
    assert jsonsafe.DEPTH_MARKER in text
    assert strict_loads(jsonsafe.dumps_bytes(value)) == parsed


def test_ordinary_payloads_are_encoded_by_the_fast_path_unchanged():
    payload = event_to_payload(chat_event())
    assert strict_loads(jsonsafe.dumps(payload)) == payload
    assert jsonsafe.dumps({"b": 1, "a": "/"}, sort_keys=True) == '{"a":"/","b":1}'


def test_a_request_nested_100k_deep_is_unparseable_not_an_error():
    event = bomb_event(request_body=b"[" * 100_000 + b"]" * 100_000)
    assert request_json(event) is None
    payload = event_to_payload(event)
    assert payload["input"].startswith("[[[")
    strict_loads(jsonsafe.dumps(payload))


def test_surrogates_and_nan_in_bodies_reach_the_file_as_valid_json(tmp_path):
    event = bomb_event(
        request_body=b'{"model":"m\\ud800","messages":[],"temperature":NaN}',
        response_body=b'{"id":"x","choices":[],"usage":{"prompt_tokens":1e999,"completion_tokens":Infinity}}',
    )
    backend = create_backend("file", endpoint=str(tmp_path / "out.jsonl"))
    backend.send([backend.payload(event)])
    line = strict_loads((tmp_path / "out.jsonl").read_bytes())
    assert line["name"] == "m\ufffd" and line["input"]["temperature"] is None
    assert "tokensUsage" not in line  # neither count is a usable integer


def test_lunary_and_helicone_receive_valid_json_for_surrogates_and_nan(fake_lunary, fake_helicone):
    event = bomb_event(
        request_body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\udc00"}],"top_p":-Infinity}',
        response_body=b'{"id":"x","choices":[{"message":{"role":"assistant","content":"\\ud83d"}}],"n":NaN}',
    )
    for name, server, key in (("lunary", fake_lunary, LUNARY_KEY), ("helicone", fake_helicone, HELICONE_KEY)):
        path = "/v1/runs/ingest" if name == "lunary" else "/oai/v1/log"
        backend = create_backend(name, endpoint=server.url + path, api_key=key)
        try:
            backend.send([backend.payload(event)])
        finally:
            backend.close()
        sent = strict_loads(server.requests[-1].body)
        assert "\ufffd" in json.dumps(sent, ensure_ascii=False)
        assert server.requests[-1].headers["Content-Type"] == "application/json"


def test_refused_requests_are_not_sent_to_lunary_or_helicone_but_kept_by_file_and_usage():
    event = bomb_event(request_body=None, response_body=None, **{"X-Proxy-Refused": ["unauthorized"]})
    event.request_body = event.response_body = None
    event.status = 401
    payloads = {}
    for name, key in (("file", ""), ("lunary", LUNARY_KEY), ("helicone", HELICONE_KEY), ("usage", "")):
        backend = create_backend(name, endpoint="/tmp/unused.jsonl" if name == "file" else "", api_key=key)
        payloads[name] = backend.payload(event)
        backend.close()
    assert payloads["lunary"] is None and payloads["helicone"] is None
    assert payloads["file"]["metadata"]["status"] == 401 and "input" not in payloads["file"]
    assert payloads["usage"]["status"] == 401


def test_a_stream_cut_inside_a_multibyte_character_keeps_its_text():
    chunk = 'data: {"id":"c","choices":[{"index":0,"delta":{"content":"日本"}}]}\n\n'.encode()
    body = chunk * 3 + chunk[: chunk.index("本".encode()) + 1]  # the capture cap fell inside 本
    payload = event_to_payload(stream_event(response_body=body))
    assert payload["output"]["choices"][0]["message"]["content"] == "日本" * 3
    assert strict_loads(jsonsafe.dumps_bytes(payload))
