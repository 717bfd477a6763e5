"""Dispatch figures for /metrics: per service, how far its consumer group is behind on the event stream.

Read from Redis at scrape time (only with LLM_PROXY_EVENT_BUS=redis-streams), with short timeouts:
a Redis that is down makes the figures unavailable, never the endpoint.
  lag          stream entries the service's group has not read yet (XINFO GROUPS `lag`)
  pending      entries read by a dispatcher but not yet acknowledged (delivered-but-unconfirmed)
  dead_letter  entries of the service in `<REDIS_STREAM_KEY>:dead-letter`
A service's group is `llm-proxy-dispatchers-<service>` (or REDIS_CONSUMER_GROUP when set).
"""

import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

GROUP_PREFIX = "llm-proxy-dispatchers-"
TIMEOUT = 0.5  # seconds; a scrape must answer even when Redis hangs
MAX_SCAN = 1000  # entries read per scrape at most (dead letters carry whole events)

_clients: dict[str, redis.Redis] = {}


def dispatch_figures() -> dict:
    """{"status": "ok" | "redis_unavailable" | "not_applicable", "services": {service: {lag, pending, dead_letter}}}"""
    if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
        return {"status": "not_applicable", "services": {}}
    try:
        client = _client(settings.REDIS_URL)
        services = _groups(client, settings.REDIS_STREAM_KEY)
        for service, dead in _dead_letters(client, settings.REDIS_STREAM_KEY + ":dead-letter").items():
            services.setdefault(service, {"lag": 0, "pending": 0})["dead_letter"] = dead
    except (redis.RedisError, OSError):
        logger.info("metrics: Redis did not answer; dispatch figures are unavailable")
        return {"status": "redis_unavailable", "services": {}}
    for figures in services.values():
        figures.setdefault("dead_letter", 0)
    return {"status": "ok", "services": services}


def _client(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
        )
    return client


def _service_name(group: str) -> str:
    return group.removeprefix(GROUP_PREFIX)


def _groups(client: redis.Redis, stream: str) -> dict[str, dict]:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # the stream does not exist yet: nothing published, nobody behind
        return {}
    services = {}
    for group in groups:
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after deletions/trimming: count what is left to read
            lag = len(client.xrange(stream, "(" + group["last-delivered-id"], "+", count=MAX_SCAN))
        services[_service_name(group["name"])] = {"lag": int(lag), "pending": int(group.get("pending") or 0)}
    return services


def _dead_letters(client: redis.Redis, stream: str) -> dict[str, int]:
    """Dead-letter entries by their `service` field (the newest MAX_SCAN when there are more)."""
    counts: dict[str, int] = {}
    for _id, fields in client.xrevrange(stream, "+", "-", count=MAX_SCAN):
        service = fields.get("service") or _service_name(fields.get("group", "")) or "unknown"
        counts[service] = counts.get(service, 0) + 1
    return counts


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
