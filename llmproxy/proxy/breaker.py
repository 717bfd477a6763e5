"""The reference's circuit breaker (§3.8): global per process, no half-open state.

CIRCUIT_BREAKER_THRESHOLD consecutive 502/503/504 answers on /v1 (upstream or local) open it for
CIRCUIT_BREAKER_COOLDOWN seconds, during which every /v1 request gets 503 at once; any other status
resets the count. A threshold of 0 disables it.
"""

import time

from django.conf import settings

from . import state

TRANSIENT = frozenset({502, 503, 504})

_failures = 0
_open_until = 0.0


def is_open() -> bool:
    global _failures, _open_until
    if not _open_until:
        return False
    if time.monotonic() < _open_until:
        return True
    _open_until, _failures = 0.0, 0
    return False


def record(status: int) -> None:
    global _failures, _open_until
    if status not in TRANSIENT:
        _failures = 0
        return
    _failures += 1
    threshold = settings.CIRCUIT_BREAKER_THRESHOLD
    if threshold and _failures >= threshold and not _open_until:
        _open_until = time.monotonic() + settings.CIRCUIT_BREAKER_COOLDOWN


@state.on_reset
def reset() -> None:
    global _failures, _open_until
    _failures, _open_until = 0, 0.0
