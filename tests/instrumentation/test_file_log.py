"""FILE_EVENT_LOG: one line per event in the reference's file-event-log format, written off the event loop."""

import base64
import gzip
import json
import os
import threading

import pytest

from instrumentation.bus import get_bus, reset_for_tests
from instrumentation.events import Event
from instrumentation.file_log import BINARY_PLACEHOLDER, FileEventLog, file_event_line, snake_case
from tests.support.fake_upstream import CHAT_COMPLETION, sse_chunks
from tests.support.waiting import wait_until

CHAT_REQUEST = b'{\n  "model": "gpt-4o-mini",\n  "messages": [{"role": "user", "content": "Hi"}]\n}'


def chat_event(body: bytes, content_type: str = "application/json", **headers) -> Event:
    return Event(
        request_id="req-1",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=1_234_567,
        response_headers={"Content-Type": [content_type], "X-Request-Id": ["req-1"], **headers},
        response_body=body,
        request_body=CHAT_REQUEST,
    )


def read_lines(path, count: int, timeout: float = 5.0) -> list[dict]:
    def enough_lines() -> list[str] | None:
        lines = path.read_text().splitlines() if path.exists() else []
        return lines if len(lines) >= count else None

    return [json.loads(line) for line in wait_until(enough_lines, timeout=timeout, message=f"{count} lines in {path}")]


def test_a_chat_completion_line_has_the_reference_keys_and_decoded_bodies():
    line = file_event_line(chat_event(json.dumps(CHAT_COMPLETION, indent=2).encode()))
    assert list(sorted(line)) == [
        "duration", "log_id", "method", "path", "request_body", "request_id",
        "response_body", "response_headers", "status", "token_usage",
    ]  # fmt: skip
    assert line["request_id"] == "req-1" and line["log_id"] == 0 and line["duration"] == 1_234_567
    assert line["request_body"] == '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'
    assert json.loads(line["response_body"]) == CHAT_COMPLETION
    assert line["response_headers"] == {"content_type": ["application/json"], "x_request_id": ["req-1"]}
    assert line["token_usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_a_streamed_answer_is_merged_into_one_completion():
    line = file_event_line(chat_event("".join(sse_chunks()).encode(), "text/event-stream"))
    merged = json.loads(line["response_body"])
    assert merged["choices"][0]["message"]["content"] == "Hello from upstream"
    assert line["token_usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_a_gzipped_answer_is_decompressed():
    body = gzip.compress(json.dumps(CHAT_COMPLETION).encode())
    line = file_event_line(chat_event(body, **{"Content-Encoding": ["gzip"]}))
    assert json.loads(line["response_body"]) == CHAT_COMPLETION


def test_binary_answers_are_replaced_unless_asked_for(settings):
    audio = b"ID3\x04\x00\xff\xfe binary"
    assert file_event_line(chat_event(audio, "audio/mpeg"))["response_body"] == BINARY_PLACEHOLDER
    assert file_event_line(chat_event(b"\xff\xfe\xfd", "text/plain"))["response_body"] == BINARY_PLACEHOLDER
    settings.LOG_BINARY_RESPONSES = True
    assert file_event_line(chat_event(audio, "audio/mpeg"))["response_body"] == base64.b64encode(audio).decode()


def test_an_event_without_bodies_keeps_null_bodies():
    event = Event(request_id="r", method="GET", path="/v1/models", status=401, duration_ns=5)
    line = file_event_line(event)
    assert line["request_body"] is None and line["response_body"] is None and "token_usage" not in line


@pytest.mark.parametrize(
    ("name", "snake"),
    [("Content-Type", "content_type"), ("X-Request-Id", "x_request_id"), ("HTTPServer", "http_server"),
     ("CamelCase", "camel_case"), ("X-Proxy-First-Chunk-At", "x_proxy_first_chunk_at")],
)  # fmt: skip
def test_header_names_are_snake_cased_as_the_reference_does(name, snake):
    assert snake_case(name) == snake


def test_lines_are_appended_to_a_file_created_with_its_folder(tmp_path):
    path = tmp_path / "new" / "folder" / "events.jsonl"
    log = FileEventLog(path)
    log(chat_event(b'{"a":1}'))
    log(chat_event(b'{"a":2}'))
    lines = read_lines(path, 2)
    assert [line["response_body"] for line in lines] == ['{"a":1}', '{"a":2}']
    log.close()
    FileEventLog(path)(chat_event(b'{"a":3}'))  # a restarted process appends
    assert len(read_lines(path, 3)) == 3


def test_a_write_error_is_logged_not_raised_and_the_log_recovers(tmp_path, caplog):
    path = tmp_path / "events.jsonl"
    path.mkdir()  # a folder where the file should be: every open fails
    log = FileEventLog(path)
    log(chat_event(b"{}"))
    wait_until(lambda: log.dropped > 0, message="the failed write to be counted as dropped")
    assert log.dropped == 1
    assert "cannot write" in caplog.text
    path.rmdir()
    log(chat_event(b'{"ok":true}'))
    assert read_lines(path, 1)[0]["response_body"] == '{"ok":true}'
    log.close()


async def test_the_bus_feeds_file_event_log_when_it_is_set(settings, tmp_path):
    settings.FILE_EVENT_LOG = str(tmp_path / "events.jsonl")
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    reset_for_tests()
    try:
        get_bus().publish(chat_event(b'{"id":"x"}'))
        await get_bus().stop()  # flushes the bus and the file writer
        assert [line["response_body"] for line in read_lines(tmp_path / "events.jsonl", 1)] == ['{"id":"x"}']
    finally:
        reset_for_tests()


async def test_file_event_log_also_works_with_the_redis_bus(redis_bus, settings, tmp_path):
    settings.FILE_EVENT_LOG = str(tmp_path / "events.jsonl")
    reset_for_tests()  # the bus picks FILE_EVENT_LOG up when it is created
    get_bus().publish(chat_event(b'{"id":"y"}'))
    await get_bus().stop()
    assert read_lines(tmp_path / "events.jsonl", 1)[0]["response_body"] == '{"id":"y"}'


def strict_loads(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_lone_surrogates_non_finite_numbers_and_deep_nesting_give_a_valid_line(tmp_path):
    path = tmp_path / "events.jsonl"
    log = FileEventLog(path)
    hostile = [
        b'{"id":"x","choices":[{"message":{"content":"\\ud800"}}],"n":NaN,"big":1e999}',
        b"[" * 100_000 + b"]" * 100_000,
        b'data: {"choices":[{"delta":{"content":"\\udfff"}}],"x":-Infinity}\n\n',
    ]
    for body in hostile:
        log(chat_event(body))
    read_lines(path, 3)
    lines = [strict_loads(line) for line in path.read_bytes().splitlines()]
    assert "\ufffd" in lines[0]["response_body"] and '"n":null' in lines[0]["response_body"]
    assert lines[1]["response_body"].startswith("[[[")  # too deep for the parser: kept as text
    assert "\ufffd" in lines[2]["response_body"]
    assert log.dropped == 0
    log.close()


def test_the_writer_survives_an_event_it_cannot_format_and_counts_it(tmp_path):
    path = tmp_path / "events.jsonl"
    log = FileEventLog(path)
    broken = chat_event(b"{}")
    broken.response_headers = ["not", "a", "map"]  # no event the bus carries looks like this; the writer copes
    log(broken)
    log(chat_event(b'{"after":1}'))
    assert read_lines(path, 1)[0]["response_body"] == '{"after":1}'
    assert log.dropped == 1 and log.written == 1
    log.close()


def test_a_write_failing_unexpectedly_counts_its_batch_and_the_writer_goes_on(tmp_path):
    path = tmp_path / "events.jsonl"
    log = FileEventLog(path)
    log(chat_event(b'{"first":1}'))
    read_lines(path, 1)
    log._file.close()  # the next write raises ValueError (I/O on a closed file), not an OSError
    log(chat_event(b'{"lost":1}'))
    wait_until(lambda: log.dropped == 1, message="one event dropped")
    log(chat_event(b'{"third":1}'))
    assert [line["response_body"] for line in read_lines(path, 2)] == ['{"first":1}', '{"third":1}']
    assert log.dropped == 1 and log._thread.is_alive()
    log.close()


def test_a_compressed_bomb_gives_a_line_bounded_by_the_cap_and_marked_truncated(settings):
    from tests.support.bombs import gzip_json_bomb

    event = chat_event(gzip_json_bomb(20), **{"Content-Encoding": ["gzip"]})
    event.request_body = gzip_json_bomb(20)
    event.response_headers["X-Proxy-Request-Content-Encoding"] = ["gzip"]
    line = file_event_line(event)
    assert line["truncated"] == ["request_body", "response_body"]
    assert len(line["request_body"]) == len(line["response_body"]) == settings.OBSERVABILITY_MAX_DECODED_BYTES
    assert line["response_body"].startswith('{"model":"gpt-4o-mini","messages":[{"role":"user"')


def test_a_gzip_request_body_without_the_recorded_encoding_is_not_decoded():
    event = chat_event(b"{}")
    event.request_body = gzip.compress(b'{"model":"m"}')
    assert file_event_line(event)["request_body"] == BINARY_PLACEHOLDER
    event.response_headers["X-Proxy-Request-Content-Encoding"] = ["gzip"]
    assert file_event_line(event)["request_body"] == '{"model":"m"}'


def test_a_writer_that_is_behind_holds_at_most_the_byte_bound_and_counts_the_rest(tmp_path):
    path = tmp_path / "events.fifo"
    os.mkfifo(path)  # opening it for writing blocks until a reader comes: the writer thread is stuck
    log = FileEventLog(path, max_bytes=1_000_000)
    body = b'{"content":"' + b"x" * 100_000 + b'"}'
    for _ in range(100):  # 10 MB offered, far under the count bound
        log(chat_event(body))
        assert log.queued_bytes <= 1_000_000
    assert log.dropped >= 89
    with open(path, "rb") as reader:  # unblock the writer: what was kept is written, as fast as it is read
        received: list[bytes] = []
        draining = threading.Thread(target=lambda: received.append(reader.read()))  # until the writer closes
        draining.start()
        wait_until(lambda: log.written + log.dropped == 100, message="all 100 events written or dropped")
        log.close()
        draining.join(10)
        assert received[0].count(b"\n") == log.written
    assert log.queued_bytes == 0
