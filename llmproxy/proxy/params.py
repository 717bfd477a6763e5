"""The parameter whitelist: top-level JSON fields whose values must match a glob (as the reference's param_whitelist).

Patterns follow Go's `path.Match`: `*` is any run of characters except `/`, `?` one character except `/`,
`[...]` a class (`[^...]` negated, ranges `a-z`), `\\` escapes. Values are compared as Go's `%v` prints
them (`1`, `true`, `[a b]`), because that is what the reference matches against.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings

from . import errors, request_body


class BadPattern(ValueError):
    """A whitelist pattern that Go's path.Match would reject as malformed."""


@dataclass(frozen=True)
class Whitelist:
    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "|".join(f"(?:{translate(p)})" for p in self.patterns) or "(?!)"
        object.__setattr__(self, "_regex", re.compile(regex, re.DOTALL))

    def allows(self, value: object) -> bool:
        return self._regex.fullmatch(go_format(value)) is not None

    def describe(self) -> str:
        return "[" + " ".join(self.patterns) + "]"


def check_request(body: bytes, meta: Mapping[str, str], whitelist: Mapping[str, Whitelist]) -> None:
    """Raise a 400 when a whitelisted parameter of a POST body is not allowed, or when the body cannot be read.

    Whatever the Content-Type says, a body is read as JSON unless it is multipart/form-data (whose field
    names are checked against the same whitelist); a Content-Encoding is undone first, within
    MAX_REQUEST_SIZE. A body that is neither is refused: an upstream might still read it (the reference
    forwarded any body not sent exactly as `application/json`, unchecked). An empty body has no parameters.
    """
    media_type = meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    encoding = meta.get("HTTP_CONTENT_ENCODING", "")
    try:
        if encoding:
            body = request_body.decoded(body, encoding, settings.MAX_REQUEST_SIZE)
        if not body:
            return
        if media_type == "multipart/form-data":
            problem = check_fields(request_body.form_fields(body, meta["CONTENT_TYPE"], whitelist), whitelist)
        elif media_type == "application/json":
            problem = check_body(body, whitelist)  # the hot path: parsed only when a whitelisted key may be in it
        else:
            problem = check_json(body, whitelist)
    except request_body.UnreadableBody as exc:
        raise errors.invalid_request_body(str(exc)) from None
    except RecursionError:  # a whitelisted value nested deeper than Python can print it
        raise errors.invalid_request_body("Request body is nested too deeply") from None
    if problem:
        raise errors.param_not_allowed(problem)


def check_body(body: bytes, whitelist: Mapping[str, Whitelist]) -> str | None:
    """None when every whitelisted field present in the JSON body matches; else the reference's error text."""
    # Cheap pre-check: no whitelisted key, even \u-escaped or in a UTF-16/32 body (which JSON parsers
    # recognise by the NULs or the byte order mark at its start), can be present: skip parsing.
    hidden = b"\\u" in body or b"\x00" in body[:4] or body[:1] in (b"\xfe", b"\xff")
    if not hidden and not any(f'"{name}"'.encode() in body for name in whitelist):
        return None
    return check_json(body, whitelist)


def check_json(body: bytes, whitelist: Mapping[str, Whitelist]) -> str | None:
    """Like check_body, parsing always; UnreadableBody when the body is not JSON."""
    # A key given twice (or once plainly and once \u-escaped): parsers keep the first or the last, so every
    # occurrence must be allowed. Objects are then parsed as tuples of pairs (`tuple` as the hook costs
    # about 5 % more than dicts, paid only by such bodies).
    twice = b"\\u" in body or b"\x00" in body[:4] or any(body.count(f'"{name}"'.encode()) > 1 for name in whitelist)
    try:
        payload = json.loads(body, object_pairs_hook=tuple if twice else None)
    except (ValueError, RecursionError):
        raise request_body.UnreadableBody("Request body is neither JSON nor multipart/form-data") from None
    if twice and isinstance(payload, tuple):
        return check_fields(((name, _as_dicts(value)) for name, value in payload), whitelist)
    return check_fields(payload.items(), whitelist) if isinstance(payload, dict) else None


def check_fields(fields: Iterable[tuple[str, object]], whitelist: Mapping[str, Whitelist]) -> str | None:
    """The reference's error text for the first (name, value) whose name is whitelisted and value is not allowed."""
    for name, value in fields:
        allowed = whitelist.get(name)
        if allowed is not None and not allowed.allows(value):
            shown = go_format(value)
            return f"Parameter '{name}' value '{shown}' is not allowed. Allowed patterns: {allowed.describe()}"
    return None


def _as_dicts(value: object) -> object:
    """A value parsed with tuples for objects, with dicts again (the last of repeated keys, as json.loads)."""
    if isinstance(value, tuple):
        return {name: _as_dicts(item) for name, item in value}
    if isinstance(value, list):
        return [_as_dicts(item) for item in value]
    return value


def translate(pattern: str) -> str:
    """A regular expression equivalent to Go's path.Match pattern (matched with fullmatch)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= n:
                raise BadPattern(f"pattern {pattern!r} ends with an escape character")
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            regex, i = _translate_class(pattern, i + 1)
            out.append(regex)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    negated = i < len(pattern) and pattern[i] == "^"
    i += negated
    ranges: list[tuple[str, str]] = []
    while True:
        if i >= len(pattern):
            raise BadPattern(f"pattern {pattern!r} has an unclosed character class")
        if pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        ranges.append((lo, hi))
    parts = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
    if not parts:
        return ("(?s:.)" if negated else "(?!)"), i
    return f"[{'^' if negated else ''}{parts}]", i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern(f"pattern {pattern!r} has a malformed character class")
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise BadPattern(f"pattern {pattern!r} ends with an escape character")
        return pattern[i + 1], i + 2
    return pattern[i], i + 1


def go_format(value: object) -> str:
    """`fmt.Sprintf("%v", v)` of a value decoded by Go's encoding/json (numbers are float64)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, int | float):
        return _go_float(float(value))
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(number: float) -> str:
    # %v uses the shortest representation, in exponent form only below 1e-4 or from 1e21 on.
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        digits = exponent.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text
