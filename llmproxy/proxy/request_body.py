"""Reading a /v1 request body for the parameter whitelist: undoing its Content-Encoding within a byte bound,
and the field names and values of a multipart/form-data body.

The whitelist must see what the upstream will see, so a body the checker cannot read for certain (an
unknown or broken encoding, a multipart body with defects) is refused rather than forwarded unchecked.
"""

import email.parser
import email.policy
import email.utils
import zlib

import brotli


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


def form_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """(name, value) of every part of a multipart/form-data body, in order; values decoded as UTF-8.

    The body is already in memory and bounded by MAX_REQUEST_SIZE, so the standard library's email parser
    reads it in one go. Any defect it notes (no boundary, a missing start or end boundary) is refused: a
    body that parsers may read differently could hide a field from the check.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = message.get_payload() if message.is_multipart() else None
    if not parts or message.defects or any(part.defects for part in parts):
        raise UnreadableBody("Request body is not valid multipart/form-data")
    fields = []
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, tuple):  # RFC 2231 (name*=utf-8''...)
            name = email.utils.collapse_rfc2231_value(name)
        if not isinstance(name, str):
            raise UnreadableBody("Request body has a multipart/form-data part without a field name")
        payload = part.get_payload(decode=True) or b""
        fields.append((name, payload.decode("utf-8", "replace")))
    return fields
