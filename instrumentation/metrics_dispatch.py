"""Dispatch figures for /metrics: per service, how far its consumer group is behind on the event stream.

Read from Redis at scrape time (only with LLM_PROXY_EVENT_BUS=redis-streams), with short timeouts:
a Redis that is down makes the figures unavailable, never the endpoint.
  lag          stream entries the service's group has not read yet (XINFO GROUPS `lag`)
  pending      entries read by a dispatcher but not yet acknowledged (delivered-but-unconfirmed)
  dead_letter  entries of the service in `<REDIS_STREAM_KEY>:dead-letter`
Same figures as `manage.py dispatch_status` (dispatch/status.py), which may wait seconds for Redis; a
scrape may not. Dead letters hold whole events, so they are counted inside Redis (a Lua script) and
never travel to this process.

The figures are kept for CACHE_SECONDS: scrapes from several Prometheus servers, dashboards and people
cost Redis one read per few seconds, and a Redis that hangs costs one TIMEOUT per few seconds, not
one per scrape. Reading them logs a (throttled) warning for each group whose lag passes
LAG_WARNING_SHARE of REDIS_STREAM_MAX_LEN: the stream is trimmed to that length whatever the groups
have read, so beyond it undelivered events are lost.
"""

import logging
import threading
import time

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from instrumentation.bus.queued import Throttled

logger = logging.getLogger(__name__)

GROUP_PREFIX = "llm-proxy-dispatchers-"
TIMEOUT = 0.5  # seconds; a scrape must answer even when Redis hangs
MAX_SCAN = 10_000  # entries counted per scrape at most
CACHE_SECONDS = 3.0
LAG_WARNING_SHARE = 0.8

# KEYS[1]: stream; ARGV[1]: first id (exclusive, "-" for all); ARGV[2]: cap. Returns {service, n, ...} or {n}.
_COUNT = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
if ARGV[3] ~= 'by-service' then return {#entries} end
local counts = {}
for _, entry in ipairs(entries) do
  local fields, service = entry[2], 'unknown'
  for i = 1, #fields, 2 do
    if fields[i] == 'service' then service = fields[i + 1] end
  end
  counts[service] = (counts[service] or 0) + 1
end
local out = {}
for service, n in pairs(counts) do
  out[#out + 1] = service
  out[#out + 1] = n
end
return out
"""

_clients: dict[str, redis.Redis] = {}
_cache: dict[tuple, tuple[float, dict]] = {}  # (url, stream, services) -> (monotonic time read, figures)
_cache_lock = threading.Lock()


def dispatch_figures() -> dict:
    """{"status": "ok" | "redis_unavailable" | "not_applicable", "services": {service: {lag, pending, dead_letter}}}"""
    if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
        return {"status": "not_applicable", "services": {}}
    key = (settings.REDIS_URL, settings.REDIS_STREAM_KEY, tuple(settings.DISPATCH_SERVICES))
    with _cache_lock:  # one scrape reads Redis, the ones arriving meanwhile take its answer
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        figures = _read_figures()
        _cache.clear()  # only the current settings' figures are worth keeping
        _cache[key] = (time.monotonic(), figures)
    if figures["status"] == "ok":
        warn_about_lag(figures["services"], settings.REDIS_STREAM_MAX_LEN)
    return figures


def warn_about_lag(services: dict[str, dict], max_len: int) -> None:
    """A warning for each group whose lag passes LAG_WARNING_SHARE of the stream's MAXLEN (0: never trimmed)."""
    if max_len <= 0:
        return
    for service, figures in services.items():
        if figures["lag"] > LAG_WARNING_SHARE * max_len:
            _lag_warning.warning(
                f"event stream: the {service} dispatchers are %d entries behind, over %d%% of "
                "REDIS_STREAM_MAX_LEN=%d; entries trimmed before they read them are lost (add dispatchers, "
                "or raise REDIS_STREAM_MAX_LEN)",
                figures["lag"],
                int(LAG_WARNING_SHARE * 100),
                max_len,
            )


def _read_figures() -> dict:
    key = settings.REDIS_STREAM_KEY
    try:
        client = _client(settings.REDIS_URL)
        services = _groups(client, key)
        for service in settings.DISPATCH_SERVICES:  # no worker ran yet: everything on the stream waits
            services.setdefault(service, {"lag": client.xlen(key), "pending": 0})
        for service, dead in _dead_letters(client, key + ":dead-letter").items():
            services.setdefault(service, {"lag": 0, "pending": 0})["dead_letter"] = dead
    except (redis.RedisError, OSError):
        logger.info("metrics: Redis did not answer; dispatch figures are unavailable")
        return {"status": "redis_unavailable", "services": {}}
    for figures in services.values():
        figures.setdefault("dead_letter", 0)
    return {"status": "ok", "services": dict(sorted(services.items()))}


_lag_warning = Throttled(logger, interval=60.0)


def _client(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        # No retries: redis-py's default (10, with backoff) would turn one TIMEOUT into many seconds.
        client = _clients[url] = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
    return client


def _groups(client: redis.Redis, stream: str) -> dict[str, dict]:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # the stream does not exist yet: nothing published, nobody behind
        return {}
    services = {}
    for group in groups:
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after deletions: count what is left to read
            lag = client.eval(_COUNT, 1, stream, "(" + group["last-delivered-id"], MAX_SCAN, "total")[0]
        services[group["name"].removeprefix(GROUP_PREFIX)] = {
            "lag": int(lag),
            "pending": int(group.get("pending") or 0),
        }
    return services


def _dead_letters(client: redis.Redis, stream: str) -> dict[str, int]:
    """Dead-letter entries by their `service` field (the oldest MAX_SCAN when there are more)."""
    flat = client.eval(_COUNT, 1, stream, "-", MAX_SCAN, "by-service")
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


def families(figures: dict) -> list:
    """The figures as Prometheus gauges labelled by service, plus whether Redis answered."""
    from prometheus_client.core import GaugeMetricFamily

    helps = {
        "lag": "Events on the stream the service's dispatchers have not read yet",
        "pending": "Events read by the service's dispatchers but not yet acknowledged",
        "dead_letter": "Events of the service moved to the dead-letter stream after failing delivery",
    }
    result = []
    for key, help_text in helps.items():
        family = GaugeMetricFamily(f"llm_proxy_dispatch_{key}", help_text, labels=["service"])
        for service, values in sorted(figures["services"].items()):
            family.add_metric([service], values[key])
        result.append(family)
    up = GaugeMetricFamily("llm_proxy_dispatch_stats_up", "1 when the dispatch figures could be read from Redis")
    up.add_metric([], 0 if figures["status"] == "redis_unavailable" else 1)
    return [*result, up]
