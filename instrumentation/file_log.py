"""FILE_EVENT_LOG: every event of this process appended to a JSONL file (the reference's --file-event-log).

An in-process subscriber of the bus (in-memory or Redis Streams alike). The line format is the
reference's (§6.2): snake_case keys, bodies decoded (gzip/br undone, compact JSON, an OpenAI
stream merged into one completion), `token_usage` from the upstream's `usage`, binary bodies
replaced unless LOG_BINARY_RESPONSES. Fixed against the reference: `request_id` is always the
event's (the reference lets a random id overwrite it), and a binary body kept by
LOG_BINARY_RESPONSES is base64, not mangled text.

Formatting and file I/O happen on a writer thread fed by a bounded queue, so the event loop never
waits on the disk. Each write is flushed; a write error is logged and the line counted as dropped.
"""

import base64
import json
import logging
import queue
import threading
from pathlib import Path

from django.conf import settings

from dispatch.transform import decode_body, merge_openai_sse, tokens_usage
from instrumentation import metrics
from instrumentation.bus.queued import Throttled
from instrumentation.events import Event

logger = logging.getLogger("instrumentation.file_log")

BINARY_PLACEHOLDER = "[binary or undecodable data]"
_BINARY_TYPES = ("audio/", "image/", "video/", "application/octet-stream")
_STOP = object()
_NOT_JSON = object()


class FileEventLog:
    """A bus subscriber (callable) that appends one JSON line per event to `path`."""

    def __init__(self, path: str | Path, *, capacity: int | None = None) -> None:
        self.path = Path(path)
        self._queue: queue.Queue = queue.Queue(maxsize=capacity or settings.OBSERVABILITY_BUFFER_SIZE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._file = None
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
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count_dropped(1, "the writer is behind (%d events queued)", self._queue.maxsize)

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
                self._write([item for item in batch if item is not _STOP])
                if stop:
                    return
        finally:
            self._close_file()

    def _write(self, events: list[Event]) -> None:
        lines = []
        for event in events:
            try:
                lines.append(json.dumps(file_event_line(event), ensure_ascii=False, sort_keys=True) + "\n")
            except Exception:
                self._count_dropped(1, "event %s could not be formatted", event.request_id)
        if not lines:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across writes
            self._file.write("".join(lines))
            self._file.flush()
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

    def _count_dropped(self, amount: int, reason: str, *args) -> None:
        self.dropped += amount
        metrics.count("file_event_log_dropped", amount)
        self._warn.warning(f"FILE_EVENT_LOG: dropped %d event(s): {reason}", amount, *args)


# --- the line format (reference §6.2 "--file-event-log") ---------------------------------


def file_event_line(event: Event) -> dict:
    """The reference's file-event-log object for one event (written with sorted keys, as Go writes maps)."""
    headers = event.response_headers or {}
    line = {
        "log_id": event.log_id,
        "request_id": event.request_id,
        "method": event.method,
        "path": event.path,
        "status": event.status,
        "duration": event.duration_ns,
        "response_headers": {snake_case(name): list(values) for name, values in headers.items()},
        "request_body": _request_text(event.request_body),
    }
    response_body, usage = _response(event, headers)
    line["response_body"] = response_body
    if usage is not None:
        line["token_usage"] = usage
    return line


def _response(event: Event, headers: dict) -> tuple[str | None, dict | None]:
    raw = event.response_body
    if raw is None:
        return None, None
    content_type = event.header("Content-Type").lower()
    if any(kind in content_type for kind in _BINARY_TYPES) and not settings.LOG_BINARY_RESPONSES:
        return BINARY_PLACEHOLDER, None
    text = _utf8(decode_body(raw, headers))
    if text is None:
        return _binary(raw), None
    merged = merge_openai_sse(text) if "data:" in text else None
    if merged is not None:
        return _compact(merged), token_usage(merged)
    parsed = _json(text)
    if parsed is _NOT_JSON:
        return text, None
    return _compact(parsed), token_usage(parsed)


def _request_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = _utf8(decode_body(raw, {}))
    if text is None:
        return _binary(raw)
    parsed = _json(text)
    return text if parsed is _NOT_JSON else _compact(parsed)


def _utf8(body: bytes | None) -> str | None:
    try:
        return None if body is None else body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _binary(raw: bytes) -> str:
    """Undecodable or non-UTF-8 bytes: a placeholder, or base64 with LOG_BINARY_RESPONSES."""
    return base64.b64encode(raw).decode() if settings.LOG_BINARY_RESPONSES else BINARY_PLACEHOLDER


def _json(text: str):
    if text.lstrip()[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def token_usage(body) -> dict | None:
    """`{prompt_tokens, completion_tokens, total_tokens}` from an OpenAI `usage` (chat, completions, Responses)."""
    counts = tokens_usage(body)
    if counts is None:
        return None
    prompt, completion = counts["prompt"], counts["completion"]
    total = body["usage"].get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if isinstance(total, int) else prompt + completion,
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
