"""Timestamps of the proxy's headers, memoised per second (formatting a date is most of their cost).

instrumentation has its own Rfc3339 formatter for its event headers (instrumentation/middleware.py, moving to
instrumentation/timefmt.py); the two are duplicates to merge once both packages settle.
"""

import time

from django.utils.http import http_date


class Rfc3339Clock:
    """Go's time.RFC3339Nano in UTC (fractional seconds without trailing zeros), with the date part memoised."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, ns: int) -> str:
        seconds, fraction = divmod(ns, 1_000_000_000)
        if self._second != seconds:
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = seconds
        if not fraction:
            return self._text + "Z"
        return f"{self._text}.{fraction:09d}".rstrip("0") + "Z"


class HttpDateClock:
    """The HTTP Date header's value for now, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = 0
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if self._second != second:
            self._text = http_date(second)
            self._second = second
        return self._text


# One of each per process: stateless apart from the memo, so sharing them needs no owner.
rfc3339_nano = Rfc3339Clock().format
http_date_now = HttpDateClock().now
