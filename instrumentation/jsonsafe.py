"""JSON text that any strict reader accepts, whatever an event's bodies contained; encoding never raises.

Bodies parsed from clients and upstreams can hold values that JSON encoders refuse or write as invalid
JSON: lone surrogates (`"\\ud800"` parses to a str that has no UTF-8 form), non-finite numbers
(`1e999`, `NaN` parse to floats that strict JSON has no words for), and nesting deeper than an encoder's
recursion limit. Every payload a dispatcher delivers and every FILE_EVENT_LOG line goes through `dumps`:
the fast path is ujson as before; only a value it cannot write is cleaned first (lone surrogates become
U+FFFD, non-finite numbers `null`, nesting past `MAX_DEPTH` a marker string) and written again.
"""

import math
from typing import Any

import ujson

# Below ujson's own limit (1024) and far below Python's recursion limit, so cleaning cannot overflow.
MAX_DEPTH = 200
DEPTH_MARKER = "[truncated: nested deeper than 200 levels]"

_ENCODE_ERRORS = (OverflowError, TypeError, ValueError, UnicodeError, RecursionError)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text, valid UTF-8 when encoded, with no NaN or Infinity."""
    try:
        text = _ujson(value, sort_keys)
        text.encode("utf-8")  # a lone surrogate passes ujson but has no UTF-8 form
        return text
    except _ENCODE_ERRORS:
        return _ujson(clean(value), sort_keys)


def dumps_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """`dumps` as UTF-8 bytes (what goes to a file or into an HTTP body)."""
    try:
        return _ujson(value, sort_keys).encode("utf-8")
    except _ENCODE_ERRORS:
        return _ujson(clean(value), sort_keys).encode("utf-8")


def _ujson(value: Any, sort_keys: bool) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False, sort_keys=sort_keys)


def clean(value: Any, depth: int = 0) -> Any:
    """A copy of `value` made of plain JSON types that every strict encoder and reader accepts."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**64 else _finite(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DEPTH:
        return DEPTH_MARKER
    if isinstance(value, dict):
        return {clean_text(str(key)): clean(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item, depth + 1) for item in value]
    return clean_text(str(value))


def clean_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (a split surrogate pair is joined again)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _finite(number: int) -> float | None:
    try:
        return float(number)
    except OverflowError:
        return None
