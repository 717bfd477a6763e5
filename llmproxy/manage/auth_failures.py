"""Failed management authentications: throttled per client IP, and audited one record per IP per window.

Windows are fixed, MANAGEMENT_AUTH_FAILURE_WINDOW long and aligned to the epoch, so every process agrees on
where one ends. A client IP with MANAGEMENT_AUTH_FAILURE_LIMIT failures in the current window is refused
with 429 until it ends, even with the right token: the limit is on guessing, and a guesser who hits the
token must not learn it from a 200. The failures are counted in Redis when it is configured (INCR and
EXPIRE, so every web process sees the same count), in this process otherwise or when Redis fails.

Auditing never writes per failed request: the first failure of an IP in a window writes one `auth.failure`
record; later ones are counted in this process, and the total (with how many were throttled) is written
into that record once, by the first management request after the window ended. Each process writes its
own record for the IPs it saw.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from audit.models import AuditEvent
from audit.services import AuditContext, audit_log, audit_log_update
from llmproxy import redis as redis_clients

logger = logging.getLogger(__name__)
ACTION = "auth.failure"
ACTOR_ANONYMOUS = "anonymous"
MAX_TRACKED_IPS = 10000  # a flood from many addresses cannot grow memory without bound
REDIS_TIMEOUT = 0.5  # seconds: a slow Redis must not hold up the management API
REDIS_KEY = "llmproxy:manage:auth-failures:{ip}:{window}"


def window_index(now: float) -> int:
    return int(now // settings.MANAGEMENT_AUTH_FAILURE_WINDOW)


def retry_after(now: float) -> int:
    """Whole seconds until the current window ends (at least 1)."""
    window = settings.MANAGEMENT_AUTH_FAILURE_WINDOW
    return max(1, math.ceil((window_index(now) + 1) * window - now))


class FailureCounter:
    """Failures per (client IP, window): in Redis when configured, in this process otherwise."""

    def __init__(self) -> None:
        self._local: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._local.clear()

    def count(self, ip: str, window: int) -> int:
        if settings.REDIS_CONFIGURED:
            try:
                return int(self._redis().get(REDIS_KEY.format(ip=ip, window=window)) or 0)
            except (redis.RedisError, OSError):
                logger.warning("management auth throttle: Redis failed, counting in this process", exc_info=True)
        with self._lock:
            return self._local.get((ip, window), 0)

    def add(self, ip: str, window: int) -> None:
        if settings.REDIS_CONFIGURED:
            key = REDIS_KEY.format(ip=ip, window=window)
            try:
                pipe = self._redis().pipeline()
                pipe.incr(key)
                pipe.expire(key, math.ceil(settings.MANAGEMENT_AUTH_FAILURE_WINDOW) + 1)
                pipe.execute()
                return
            except (redis.RedisError, OSError):
                logger.warning("management auth throttle: Redis failed, counting in this process", exc_info=True)
        with self._lock:
            for old in [k for k in self._local if k[1] < window or len(self._local) > MAX_TRACKED_IPS]:
                del self._local[old]
            self._local[(ip, window)] = self._local.get((ip, window), 0) + 1

    def _redis(self) -> redis.Redis:
        return redis_clients.client(timeout=REDIS_TIMEOUT)


@dataclass
class _Window:
    index: int
    event: AuditEvent | None
    count: int = 1
    throttled: int = 0
    written: int = 1


class FailureAudit:
    """One `auth.failure` record per client IP per window, its count filled in after the window."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()

    def failure(self, ctx: AuditContext, ip: str, reason: str, *, throttled: bool, now: float) -> None:
        index = window_index(now)
        with self._lock:
            current = self._windows.get(ip)
            if current is not None and current.index == index:
                current.count += 1
                current.throttled += int(throttled)
                return
            if len(self._windows) >= MAX_TRACKED_IPS:
                self._windows.clear()  # their counts stay at what was written; the records exist
            # Claimed before writing, so that concurrent failures of the same address count into this window.
            opened = self._windows[ip] = _Window(index, None, throttled=int(throttled))
        details = {"count": 1, "throttled": int(throttled), "reason": reason, "window_seconds": self._seconds()}
        opened.event = audit_log(ACTION, "failure", ctx, details=details)

    def flush(self, now: float) -> None:
        """Write the totals of the windows that have ended (one update each), and forget them."""
        index = window_index(now)
        with self._lock:
            ended = {ip: w for ip, w in self._windows.items() if w.index < index}
            for ip in ended:
                del self._windows[ip]
        for window in ended.values():
            if window.event is not None and window.count > window.written:
                audit_log_update(window.event, {"count": window.count, "throttled": window.throttled})

    def _seconds(self) -> float:
        return settings.MANAGEMENT_AUTH_FAILURE_WINDOW


counter = FailureCounter()
audit = FailureAudit()


def reset_for_tests() -> None:
    """Forget this process's counts and open windows (each test starts with a clean slate)."""
    counter.clear()
    audit.clear()


def blocked_for(ip: str, now: float | None = None) -> int:
    """Seconds the client IP must wait (0: not throttled); also writes the totals of ended windows."""
    now = time.time() if now is None else now
    audit.flush(now)
    if counter.count(ip, window_index(now)) >= settings.MANAGEMENT_AUTH_FAILURE_LIMIT:
        return retry_after(now)
    return 0


def record_failure(request, ip: str, reason: str, *, throttled: bool = False) -> None:
    """Count a failed authentication of `ip` (unless already throttled) and audit it, coalesced."""
    now = time.time()
    if not throttled:
        counter.add(ip, window_index(now))
    audit.failure(AuditContext.from_request(request, actor=ACTOR_ANONYMOUS), ip, reason, throttled=throttled, now=now)
