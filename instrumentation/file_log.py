"""FILE_EVENT_LOG: every event of this process appended to a JSONL file (the reference's --file-event-log).

An in-process subscriber of the bus (in-memory or Redis Streams alike). The line format is the
reference's file-event-log object: snake_case keys, bodies decoded (gzip/br undone, compact JSON, an OpenAI
stream merged into one completion), `token_usage` from the upstream's `usage`, binary bodies
replaced unless LOG_BINARY_RESPONSES. Fixed against the reference: `request_id` is always the
event's (the reference lets a random id overwrite it), and a binary body kept by
LOG_BINARY_RESPONSES is base64, not mangled text.

Bodies are decoded by `instrumentation.bodies`, so no decompression produces more than
OBSERVABILITY_MAX_DECODED_BYTES (a cut body is written as text and named in the line's `truncated`), and
lines are encoded by `instrumentation.jsonsafe`, so lone surrogates, NaN or deep nesting still give valid JSON.

Formatting and file I/O happen on a writer thread fed by a bounded queue, so the event loop never
waits on the disk. Each write is flushed; an event that cannot be formatted or written is logged and
counted as dropped, and the thread goes on with the next one.
"""

import base64
import logging
import queue
import threading
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from instrumentation import metrics
from instrumentation.bodies import Body, request_body, response_body
from instrumentation.bus.queued import Throttled, event_size
from instrumentation.events import Event
from instrumentation.jsonsafe import dumps, dumps_bytes
from instrumentation.sse import is_token_count, merge_openai_sse, tokens_usage

logger = logging.getLogger("instrumentation.file_log")

BINARY_PLACEHOLDER = "[binary or undecodable data]"
_BINARY_TYPES = ("audio/", "image/", "video/", "application/octet-stream")
_STOP = object()


class FileEventLog:
    """A bus subscriber (callable) that appends one JSON line per event to `path`."""

    def __init__(self, path: str | Path, *, capacity: int | None = None, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity or settings.OBSERVABILITY_BUFFER_SIZE)
        # Bytes of the events queued for the writer: a count alone would let slow, large events (up to the
        # capture caps each) pile up far past OBSERVABILITY_BUFFER_BYTES while the writer is behind.
        self.max_bytes = max_bytes or settings.OBSERVABILITY_BUFFER_BYTES
        self.queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._file: BinaryIO | None = None
        self.written = 0
        self.dropped = 0
        self._warn = Throttled(logger)

    def __repr__(self) -> str:
        return f"FileEventLog({str(self.path)!r})"

    def __call__(self, event: Event) -> None:
        """Runs in the bus's task: hand the event to the writer thread without waiting."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start_writer()
        size = event_size(event)
        with self._bytes_lock:
            if self.queued_bytes + size > self.max_bytes:
                self._count_dropped(1, "the writer is behind (%d bytes queued)", self.queued_bytes)
                return
            self.queued_bytes += size
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._release([event])
            self._count_dropped(1, "the writer is behind (%d events queued)", self._queue.maxsize)

    def _release(self, events: list[Event]) -> None:
        with self._bytes_lock:
            self.queued_bytes -= sum(event_size(event) for event in events)

    def close(self, within: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread and close the file."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=within)
            except queue.Full:
                pass
            thread.join(within)
        self._thread = None

    # --- the writer thread ----------------------------------------------------------
    def _start_writer(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="file-event-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < 256 and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                stop = any(item is _STOP for item in batch)
                events = [item for item in batch if isinstance(item, Event)]
                try:
                    self._write(events)
                except Exception as exc:  # the writer outlives any event: count the batch, reopen, go on
                    self._close_file()
                    self._count_dropped(len(events), "writing a batch failed: %s", type(exc).__name__)
                finally:
                    self._release(events)  # the batch in hand counts against the bound until it is written
                if stop:
                    return
        finally:
            self._close_file()

    def _write(self, events: list[Event]) -> None:
        lines: list[bytes] = []
        for event in events:
            try:
                lines.append(dumps_bytes(file_event_line(event), sort_keys=True) + b"\n")
            except Exception as exc:  # one event's problem is that event's alone
                self._count_dropped(1, "event %r could not be formatted: %s", _event_id(event), type(exc).__name__)
        if not lines:
            return
        try:
            file = self._file
            if file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                file = open(self.path, "ab")  # noqa: SIM115 - kept open across writes
                self._file = file
            file.write(b"".join(lines))
            file.flush()
            self.written += len(lines)
        except OSError as exc:
            self._close_file()  # reopened on the next write: the folder may come back, the disk may free up
            self._count_dropped(len(lines), "cannot write %s: %s", self.path, exc)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _count_dropped(self, amount: int, reason: str, *args: object) -> None:
        self.dropped += amount
        metrics.count("file_event_log_dropped", amount)
        self._warn.warning(f"FILE_EVENT_LOG: dropped %d event(s): {reason}", amount, *args)


# --- the line format (the reference's "--file-event-log" object) ------------------------


def file_event_line(event: Event) -> dict[str, Any]:
    """The reference's file-event-log object for one event (written with sorted keys, as Go writes maps).

    A body that decoding cut at OBSERVABILITY_MAX_DECODED_BYTES is written as its text (cut JSON does not
    parse) and named in an extra key, `truncated: ["request_body", "response_body"]`.
    """
    headers = event.response_headers or {}
    request = request_body(event)
    line: dict[str, Any] = {
        "log_id": event.log_id,
        "request_id": event.request_id,
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "duration": event.duration_ns,
        "response_headers": {snake_case(name): list(values) for name, values in headers.items()},
        "request_body": _request_text(event.request_body, request),
    }
    response_text, usage, response_cut = _response(event)
    line["response_body"] = response_text
    if usage is not None:
        line["token_usage"] = usage
    truncated = [name for name, cut in (("request_body", request.truncated), ("response_body", response_cut)) if cut]
    if truncated:
        line["truncated"] = truncated
    return line


def _response(event: Event) -> tuple[str | None, dict[str, int] | None, bool]:
    """(the body as the line shows it, its token usage, whether decoding cut it)."""
    raw = event.response_body
    if raw is None:
        return None, None, False
    content_type = event.header("Content-Type").lower()
    if any(kind in content_type for kind in _BINARY_TYPES) and not settings.LOG_BINARY_RESPONSES:
        return BINARY_PLACEHOLDER, None, False
    body = response_body(event)
    text = body.text()
    if text is None:
        return _binary(raw), None, body.truncated
    merged = merge_openai_sse(text) if "data:" in text else None
    if merged is not None:
        return _compact(merged), token_usage(merged), body.truncated
    parsed = body.json()
    if parsed is None:
        return text, None, body.truncated
    return _compact(parsed), token_usage(parsed), False


def _request_text(raw: bytes | None, body: Body) -> str | None:
    if raw is None:
        return None
    text = body.text()
    if text is None:
        return _binary(raw)
    parsed = body.json()
    return text if parsed is None else _compact(parsed)


def _binary(raw: bytes) -> str:
    """Undecodable or non-UTF-8 bytes: a placeholder, or base64 with LOG_BINARY_RESPONSES."""
    return base64.b64encode(raw).decode() if settings.LOG_BINARY_RESPONSES else BINARY_PLACEHOLDER


def _compact(value: Any) -> str:
    return dumps(value)


def _event_id(event: object) -> str:
    return str(getattr(event, "request_id", ""))[:100]


def token_usage(body: Any) -> dict[str, int] | None:
    """`{prompt_tokens, completion_tokens, total_tokens}` from an OpenAI `usage` (chat, completions, Responses)."""
    counts = tokens_usage(body)
    if counts is None:
        return None
    prompt, completion = counts["prompt"], counts["completion"]
    total = body["usage"].get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if is_token_count(total) else prompt + completion,
    }


def snake_case(name: str) -> str:
    """The reference's snake_case: `Content-Type` -> `content_type`, `HTTPServer` -> `http_server`."""
    out = []
    for i, char in enumerate(name):
        if char in "- ":
            out.append("_")
            continue
        if char.isupper() and i and out[-1] != "_":
            previous, following = name[i - 1], name[i + 1 : i + 2]
            if previous.islower() or previous.isdigit() or (previous.isupper() and following.islower()):
                out.append("_")
        out.append(char.lower())
    return "".join(out)
