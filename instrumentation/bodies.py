"""Event bodies with their Content-Encoding undone, never more than OBSERVABILITY_MAX_DECODED_BYTES.

A few KB of gzip or br can expand to gigabytes, and clients and upstreams choose what they send, so every
decompression of an event body (in the web process for FILE_EVENT_LOG, and in every dispatcher) goes
through `decode_capped`: each stage of stacked encodings stops at the cap, and the result says whether
it was cut. Nothing is decoded by sniffing magic bytes: only a named encoding is undone.
"""

import zlib
from typing import Any, NamedTuple

import brotli  # type: ignore[import-untyped]  # Brotli ships no type hints
import ujson
from django.conf import settings

from instrumentation.events import Event

# The event-only header the proxy adds when the client's request had a Content-Encoding: request bodies are
# decoded only when it says so (never by sniffing magic bytes, which a client chooses).
REQUEST_ENCODING_HEADER = "X-Proxy-Request-Content-Encoding"
MAX_STACKED_ENCODINGS = 4  # no server stacks more; each stage is bounded anyway, this bounds the time
BROTLI_STEP = 32768
# ujson parses these documents about twice as fast as the standard library, and stops at 1024 levels of nesting.
loads = ujson.loads


def header_value(headers: dict[str, Any] | None, name: str) -> str:
    """First value of a header in a `name -> [values]` (or `name -> value`) map, case-insensitively."""
    lower = name.lower()
    for key, values in (headers or {}).items():
        if key.lower() == lower:
            if isinstance(values, str):
                return values
            return values[0] if values else ""
    return ""


class Body(NamedTuple):
    """An event body with its encoding undone: at most OBSERVABILITY_MAX_DECODED_BYTES, `truncated` when cut."""

    data: bytes | None
    truncated: bool = False

    def text(self) -> str | None:
        """The body as UTF-8 text; None when absent or not UTF-8.

        A body cut inside a multi-byte character (by a capture cap, the decoded cap, or an endless stream
        captured up to its cap) loses that character only, not all of its text.
        """
        if self.data is None:
            return None
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.end == len(self.data) and exc.reason == "unexpected end of data":
                return self.data[: exc.start].decode("utf-8")
            return None

    def json(self) -> Any:
        """The body parsed as JSON; None when absent, not JSON, or truncated (cut JSON is not JSON)."""
        return None if self.truncated else parse_json(self.data)


def decode_body(body: bytes | None, headers: dict[str, list[str]]) -> bytes | None:
    """The body with its Content-Encoding (gzip, deflate, br) undone, at most the decoded cap; None when
    absent or undecodable. A body captured up to the observability cap may end mid-stream: what
    decompresses is returned."""
    return decode_capped(body, header_value(headers, "Content-Encoding")).data


def decode_capped(body: bytes | None, content_encoding: str, limit: int | None = None) -> Body:
    """`body` with the encodings named in `content_encoding` undone, each stage stopping at `limit` bytes
    of output (OBSERVABILITY_MAX_DECODED_BYTES): a few KB of gzip or br can expand to gigabytes."""
    if body is None:
        return Body(None)
    limit = limit or settings.OBSERVABILITY_MAX_DECODED_BYTES
    if not content_encoding:  # most bodies: nothing to undo
        return Body(body) if len(body) <= limit else Body(body[:limit], True)
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    if len(encodings) > MAX_STACKED_ENCODINGS:
        return Body(None)
    truncated = len(body) > limit  # a capture cap above the decoded cap: the rest is never looked at
    if truncated:
        body = body[:limit]
    try:
        for encoding in reversed(encodings):
            decoded = _undo_encoding(body, encoding, limit)
            if decoded is None:
                return Body(None)
            body, cut = decoded
            truncated = truncated or cut
    except (zlib.error, brotli.error):
        return Body(None)
    return Body(body, truncated)


def _undo_encoding(body: bytes, encoding: str, limit: int) -> tuple[bytes, bool] | None:
    if encoding in ("identity", ""):
        return body, False
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _unzlib(body, limit)
    if encoding == "br":
        return _unbrotli(body, limit)
    return None


def _unzlib(body: bytes, limit: int) -> tuple[bytes, bool]:
    # wbits 47 = auto-detect a gzip or zlib header; decompressobj tolerates a truncated tail.
    decompressor = zlib.decompressobj(wbits=47)
    out = decompressor.decompress(body, limit)  # max_length: the output stops at the limit
    if len(out) < limit or decompressor.eof:
        return out, False
    return out, bool(decompressor.decompress(decompressor.unconsumed_tail, 1))  # one byte more: it was cut


def _unbrotli(body: bytes, limit: int) -> tuple[bytes, bool]:
    # brotli's output_buffer_limit stops growing the output buffer once it reaches the limit, but a buffer
    # grows in blocks of up to about three times the request: ask for small steps and stop past `limit`.
    decompressor = brotli.Decompressor()
    parts = [decompressor.process(body, output_buffer_limit=BROTLI_STEP)]
    size = len(parts[0])
    while size <= limit and not decompressor.is_finished() and not decompressor.can_accept_more_data():
        part = decompressor.process(b"", output_buffer_limit=BROTLI_STEP)
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        parts[-1] = parts[-1][: len(parts[-1]) - (size - limit)]
    return b"".join(parts), size > limit


def parse_json(body: bytes | str | None) -> Any:
    """`body` parsed as a JSON object or array; None when it is not one (or nests past the parser's depth)."""
    if not body or body.lstrip()[:1] not in (b"{", b"[", "{", "["):
        return None
    try:
        return loads(body)
    except (ValueError, RecursionError):
        return None


# --- an event's bodies ---------------------------------------------------------------


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
