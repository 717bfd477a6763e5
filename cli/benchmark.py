"""The reference's `benchmark` command: N requests over C concurrent workers, then a table.

Each request carries `X-REQUEST-START` (unix ns). The proxy answers with `X-UPSTREAM-REQUEST-START`
and `X-UPSTREAM-REQUEST-STOP` (unix ns), which split the latency into upstream time and proxy time:
proxy = (upstream_start - request_start) + (response_end - upstream_stop). Cache hits have no upstream
times; their proxy time is `X-Proxy-Final-Response-At - X-Proxy-Received-At`.
The client is aiohttp with one pooled connector: httpx's default transport would be the bottleneck.
"""

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

BODY_METHODS = {"POST", "PUT", "PATCH"}
SAMPLE_BODY_LIMIT = 4000  # characters of a sample body shown by --debug


@dataclass
class Options:
    base_url: str
    endpoint: str
    token: str
    requests: int
    concurrency: int
    body: str = ""
    method: str = "POST"
    cache: bool = False
    cache_ttl: int = 0
    timeout: float = 10.0


@dataclass
class Result:
    status: int  # 0: network error
    latency_ns: int
    upstream_ns: int = 0
    proxy_ns: int = 0
    cache_header: str = ""
    error: str = ""
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Progress:
    """A live progress bar (one line redrawn with \\r), at most ten times a second."""

    def __init__(self, total: int, write: Callable[[str], object] | None = None) -> None:
        self.total, self.sent, self.completed, self.failed = total, 0, 0, 0
        self.write = write or _write_stderr
        self._drawn = 0.0

    def update(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        width = 30
        filled = width * self.completed // max(self.total, 1)
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        self.write(f"\r[{bar[:width]}] {self.completed}/{self.total} completed, {self.failed} failed, {self.sent} sent")

    def finish(self) -> None:
        self.update(force=True)
        self.write("\n")


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def request_headers(options: Options, start_ns: int) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {options.token}"}
    if options.body and options.method in BODY_METHODS:
        headers["Content-Type"] = "application/json"
    if options.cache:
        headers["Cache-Control"] = f"public, max-age={options.cache_ttl if options.cache_ttl > 0 else 86400}"
    headers["X-REQUEST-START"] = str(start_ns)
    return headers


async def run(options: Options, progress: Progress) -> tuple[list[Result], float]:
    """Send every request; returns the results and the wall time in seconds."""
    connector = aiohttp.TCPConnector(limit=max(options.concurrency, 1), limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=options.timeout)
    results: list[Result] = []
    share, extra = divmod(options.requests, options.concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True) as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                progress.sent += 1
                result = await send(session, options)
                results.append(result)
                progress.completed += 1
                progress.failed += not result.ok
                progress.update()

        await asyncio.gather(*(worker(share + (i < extra)) for i in range(options.concurrency)))
    return results, time.perf_counter() - started


async def send(session: aiohttp.ClientSession, options: Options) -> Result:
    start_ns = time.time_ns()
    headers = request_headers(options, start_ns)
    data = options.body.encode() if options.body and options.method in BODY_METHODS else None
    try:
        async with session.request(
            options.method, options.base_url + options.endpoint, data=data, headers=headers
        ) as r:
            body = await r.read()
            end_ns = time.time_ns()
            result = Result(r.status, end_ns - start_ns, headers=list(r.headers.items()))
            result.body = body[:SAMPLE_BODY_LIMIT].decode("utf-8", "replace")
            result.cache_header = r.headers.get("X-PROXY-CACHE", "").lower()
            result.upstream_ns, result.proxy_ns = split_latency(r.headers, start_ns, end_ns)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        result = Result(0, time.time_ns() - start_ns, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    result.request_headers = {**headers, "Authorization": "Bearer <redacted>"}
    result.request_body = data.decode() if data else ""
    return result


def split_latency(headers: Mapping[str, str], start_ns: int, end_ns: int) -> tuple[int, int]:
    """(upstream ns, proxy ns) from the proxy's timing headers; 0 when it sent none."""
    up_start, up_stop = _int(headers.get("X-UPSTREAM-REQUEST-START")), _int(headers.get("X-UPSTREAM-REQUEST-STOP"))
    if up_start > 0 and up_stop > 0:
        return max(up_stop - up_start, 0), max((up_start - start_ns) + (end_ns - up_stop), 0)
    received = _rfc3339_ns(headers.get("X-Proxy-Received-At"))
    final = _rfc3339_ns(headers.get("X-Proxy-Final-Response-At"))
    if received and final:
        return 0, max(final - received, 0)
    return 0, 0


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _rfc3339_ns(value: str | None) -> int:
    """Unix ns of an RFC 3339 timestamp with up to nanosecond digits (`2026-01-02T03:04:05.123456789Z`)."""
    if not value:
        return 0
    try:
        head, _, rest = value.strip().partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :] if rest else value[len(head) :]
        base = datetime.fromisoformat(head + (zone if zone and zone != "Z" else "+00:00"))
        return int(base.timestamp()) * 1_000_000_000 + int((digits + "000000000")[:9])
    except ValueError:
        return 0


# --- the summary ---------------------------------------------------------------------------------


def percentile(sorted_values: list[int], q: float) -> int:
    """The reference's index rule: element int(q*n)-1 of the sorted values (at least the first)."""
    if not sorted_values:
        return 0
    return sorted_values[max(int(len(sorted_values) * q) - 1, 0)]


def trimmed_mean(sorted_values: list[int], q: float = 0.9) -> int:
    """Mean of the fastest q share (the reference's "p90 mean")."""
    if not sorted_values:
        return 0
    kept = sorted_values[: max(int(len(sorted_values) * q), 1)]
    return sum(kept) // len(kept)


def latency_stats(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "avg": sum(ordered) // len(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p50": percentile(ordered, 0.5),
        "p90": percentile(ordered, 0.9),
        "p99": percentile(ordered, 0.99),
        "p90_mean": trimmed_mean(ordered),
    }


def summarize(options: Options, results: list[Result], duration: float) -> dict[str, Any]:
    good = [r for r in results if r.ok]
    statuses: dict[int, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "total_requests": options.requests,
        "concurrency": options.concurrency,
        "duration_seconds": duration,
        "success": len(good),
        "failed": len(results) - len(good),
        "requests_per_second": options.requests / duration if duration > 0 else 0.0,
        "latency": latency_stats([r.latency_ns for r in good]),
        "cache_hits": sum(r.cache_header in ("hit", "conditional-hit") for r in results),
        "saw_cache_header": any(r.cache_header for r in results),
        "upstream_latency": latency_stats([r.upstream_ns for r in good if r.upstream_ns > 0]),
        "proxy_latency": latency_stats([r.proxy_ns for r in good if r.proxy_ns > 0]),
        "status_counts": dict(sorted(statuses.items())),
    }


def samples_by_status(results: list[Result]) -> dict[int, Result]:
    samples: dict[int, Result] = {}
    for r in results:
        samples.setdefault(r.status, r)
    return dict(sorted(samples.items()))
