"""Reading a /v1 request body for the parameter whitelist: undoing its Content-Encoding within a byte bound,
and the field names and values of a multipart/form-data body.

The whitelist must see what the upstream will see, so a body the checker cannot read for certain (an
unknown or broken encoding, a multipart body with defects) is refused rather than forwarded unchecked.
"""

import email.parser
import email.policy
import email.utils
import zlib
from collections.abc import Container

import brotli  # type: ignore[import-untyped]  # the Brotli package ships no type information


class UnreadableBody(ValueError):
    """The body cannot be read for the check; the message says why, for the client's 400."""


def decoded(body: bytes, content_encoding: str, limit: int) -> bytes:
    """`body` with every coding of `content_encoding` undone (last applied, first undone), at most `limit` bytes."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        body = _undo(body, coding, limit)
    return body


def _undo(body: bytes, coding: str, limit: int) -> bytes:
    if coding == "identity":
        return body
    if coding in ("gzip", "x-gzip"):
        out, finished, rest = _inflate(body, 31, limit)
    elif coding == "deflate":
        # HTTP's deflate is the zlib format, but some clients send raw deflate: accept both, as servers do.
        try:
            out, finished, rest = _inflate(body, 15, limit)
        except zlib.error:
            out, finished, rest = _inflate(body, -15, limit)
    elif coding == "br":
        out, finished, rest = _unbrotli(body, limit)
    else:
        raise UnreadableBody(f"Content-Encoding '{coding}' is not supported; use gzip, deflate, br or none")
    if len(out) > limit:
        raise UnreadableBody(f"Request body decodes to more than MAX_REQUEST_SIZE ({limit} bytes)")
    if not finished or rest:
        # A truncated stream, or data after its end (a second gzip member) that another decoder might read.
        raise UnreadableBody(f"Request body is not valid {coding} data (truncated or with trailing data)")
    return out


def _inflate(body: bytes, wbits: int, limit: int) -> tuple[bytes, bool, bytes]:
    try:
        inflater = zlib.decompressobj(wbits=wbits)
        out = inflater.decompress(body, limit + 1)  # max_length: never more than limit + 1 bytes out
    except zlib.error as exc:
        if wbits == 15:
            raise
        raise UnreadableBody(f"Request body is not valid {'gzip' if wbits == 31 else 'deflate'} data") from exc
    return out, inflater.eof, inflater.unused_data


def _unbrotli(body: bytes, limit: int) -> tuple[bytes, bool, bytes]:
    decompressor = brotli.Decompressor()
    try:
        out = decompressor.process(body, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise UnreadableBody("Request body is not valid br data") from exc
    return out, decompressor.is_finished(), b""


def form_fields(body: bytes, content_type: str, wanted: Container[str]) -> list[tuple[str, str]]:
    """(name, value) of every part of a multipart/form-data body, in order; values (UTF-8) only for `wanted`
    names, "" for the others (a file upload is not copied or decoded).

    Parts are found with bytes.find, so a 10 MB upload costs milliseconds on the event loop (the standard
    library's email parser took half a second); each part's header block goes to the email header parser.
    Anything parsers might read differently (no boundary, no closing delimiter, a part without a name, a
    transfer encoding on a checked field) is refused, since it could hide a field from the check.
    """
    boundary = _header_param(f"Content-Type: {content_type}", "boundary", "content-type")
    if not boundary:
        raise UnreadableBody("multipart/form-data without a boundary parameter")
    fields = []
    for start, end in _part_spans(body, b"--" + boundary.encode("latin-1", "replace")):
        head_end = body.find(b"\r\n\r\n", start, end)
        head = body[start:head_end].decode("latin-1") if head_end >= 0 else ""
        name = _header_param(head, "name", "content-disposition")
        if name is None:
            raise UnreadableBody("Request body has a multipart/form-data part without a field name")
        value = ""
        if name in wanted:
            coding = (_header_param(head, None, "content-transfer-encoding") or "binary").lower()
            if coding not in ("7bit", "8bit", "binary"):
                raise UnreadableBody(f"multipart/form-data field '{name}' has a Content-Transfer-Encoding")
            value = body[head_end + 4 : end].decode("utf-8", "replace")
        fields.append((name, value))
    return fields


def _part_spans(body: bytes, delimiter: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part's headers-and-content between the delimiters; UnreadableBody if malformed."""
    marker = b"\r\n" + delimiter
    first = 0 if body.startswith(delimiter) else body.find(marker) + 2  # a preamble may come first
    if first < 0 or not body.startswith(delimiter, first):
        raise UnreadableBody("Request body is not valid multipart/form-data (no opening boundary)")
    spans, pos = [], first + len(delimiter)
    while not body.startswith(b"--", pos):  # `--` after a delimiter closes the body
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise UnreadableBody("Request body is not valid multipart/form-data (bad boundary line)")
        start, search = line_end + 2, line_end + 2
        while True:  # the next delimiter: one followed by `--` or by optional blanks and a line end
            end = body.find(marker, search)
            if end < 0:
                raise UnreadableBody("Request body is not valid multipart/form-data (no closing boundary)")
            after = end + len(marker)
            rest = body[after : after + 80]
            if rest.startswith(b"--") or rest.lstrip(b" \t").startswith(b"\r\n"):
                break
            search = after
        spans.append((start, end))
        pos = end + len(marker)
    return spans


def _header_param(head: str, param: str | None, header: str) -> str | None:
    """A parameter of a header (RFC 2231 forms collapsed), or the header's value when `param` is None."""
    message = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(head + "\r\n\r\n")
    if param is None:
        value = message.get(header)
        return None if value is None else str(value).strip()
    raw = message.get_param(param, header=header)
    if isinstance(raw, tuple):  # RFC 2231 (name*=utf-8''...)
        return email.utils.collapse_rfc2231_value(raw)
    return raw if isinstance(raw, str) else None
