"""Timestamps in Go's time.RFC3339Nano form, as the reference writes them in headers and events."""

import time


class Rfc3339Nano:
    """Formats nanosecond Unix times as `2024-05-01T12:00:00.123456789Z` (UTC, trailing fraction zeros dropped).

    Keeps the formatted whole second of its last call: strftime is the slow part, and the requests of one
    second share it. A stale memo is only a miss, so threads sharing one instance need no lock (the memo is
    replaced as one tuple).
    """

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def format(self, ns: int) -> str:
        seconds, fraction = divmod(ns, 1_000_000_000)
        cached_seconds, stamp = self._second
        if seconds != cached_seconds:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = (seconds, stamp)
        digits = f"{fraction:09d}".rstrip("0")
        return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


# The process's formatter; a bound method, so a call costs what a module function's does.
rfc3339_nano = Rfc3339Nano().format
