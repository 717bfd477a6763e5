"""The HTTP Date header's value, memoised per second (formatting a date is most of its cost).

The proxy's RFC 3339 timestamps (X-Proxy-Received-At and the like) come from instrumentation/timefmt.py, the
formatter the event headers use too.
"""

import time

from django.utils.http import http_date


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


# One per process: stateless apart from the memo, so sharing it needs no owner.
http_date_now = HttpDateClock().now
