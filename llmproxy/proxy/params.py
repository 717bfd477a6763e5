"""The parameter whitelist: top-level JSON fields whose values must match a glob (reference §3.10).

Patterns follow Go's `path.Match`: `*` is any run of characters except `/`, `?` one character except `/`,
`[...]` a class (`[^...]` negated, ranges `a-z`), `\\` escapes. Values are compared as Go's `%v` prints
them (`1`, `true`, `[a b]`), because that is what the reference matches against.
"""

import json
import re
from dataclasses import dataclass, field


class BadPattern(ValueError):
    """A whitelist pattern that Go's path.Match would reject as malformed."""


@dataclass(frozen=True)
class Whitelist:
    patterns: tuple[str, ...]
    _regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "|".join(f"(?:{translate(p)})" for p in self.patterns) or "(?!)"
        object.__setattr__(self, "_regex", re.compile(regex, re.DOTALL))

    def allows(self, value) -> bool:
        return self._regex.fullmatch(go_format(value)) is not None

    def describe(self) -> str:
        return "[" + " ".join(self.patterns) + "]"


def check_body(body: bytes, whitelist: dict) -> str | None:
    """None when every whitelisted field present in the JSON body matches; else the reference's error text."""
    if b"\\u" not in body and not any(f'"{name}"'.encode() in body for name in whitelist):
        return None  # cheap pre-check: no whitelisted key (even \u-escaped) can be present, skip parsing
    try:
        payload = json.loads(body)
    except ValueError:
        return None  # not JSON: the reference forwards it and lets the upstream answer
    if not isinstance(payload, dict):
        return None
    for name, allowed in whitelist.items():
        if name in payload and not allowed.allows(payload[name]):
            shown = go_format(payload[name])
            return f"Parameter '{name}' value '{shown}' is not allowed. Allowed patterns: {allowed.describe()}"
    return None


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


def go_format(value) -> str:
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
