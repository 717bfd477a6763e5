"""Per-service dispatch figures from Redis: consumer-group lag, pending entries, consumers, dead letters."""

from collections import Counter

import redis
from django.conf import settings

from dispatch.streams import GROUP_PREFIX, DeadLetters, client


def dispatch_status(stream_key: str | None = None, *, timeout: float = 10.0) -> list[dict]:
    """One row per service that has a consumer group, is in DISPATCH_SERVICES, or has dead letters."""
    key = stream_key or settings.REDIS_STREAM_KEY
    redis_client = client(timeout=timeout)
    rows: dict[str, dict] = {}
    for group in _groups(redis_client, key):
        service = group["name"].removeprefix(GROUP_PREFIX)
        rows[service] = {
            "service": service,
            "group": group["name"],
            "lag": _lag(redis_client, key, group),
            "pending": int(group.get("pending") or 0),
            "consumers": [
                {"name": c["name"], "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
                for c in redis_client.xinfo_consumers(key, group["name"])
            ],
        }
    for service in settings.DISPATCH_SERVICES:
        if service not in rows:  # no worker ran yet: everything on the stream is waiting
            rows[service] = {
                "service": service,
                "group": GROUP_PREFIX + service,
                "lag": redis_client.xlen(key),
                "pending": 0,
                "consumers": [],
            }
    dead = Counter(fields.get("service", "") for _, fields in DeadLetters(key, timeout=timeout).entries())
    for service, count in dead.items():
        rows.setdefault(service, {"service": service, "group": "", "lag": 0, "pending": 0, "consumers": []})
        rows[service]["dead_letter"] = count
    for row in rows.values():
        row.setdefault("dead_letter", 0)
    return [rows[name] for name in sorted(rows)]


def _groups(redis_client: redis.Redis, key: str) -> list[dict]:
    try:
        return redis_client.xinfo_groups(key)
    except redis.ResponseError:  # no stream yet
        return []


def _lag(redis_client: redis.Redis, key: str, group: dict) -> int:
    if group.get("lag") is not None:
        return int(group["lag"])
    # Redis cannot tell after deletions: count the entries after the last one delivered.
    return len(redis_client.xrange(key, "(" + group["last-delivered-id"], "+"))


def admin_dispatch_figures() -> dict | None:
    """The admin index's dispatch table: None without Redis Streams, a note when Redis does not answer in time."""
    if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
        return None
    try:
        return {"stream": settings.REDIS_STREAM_KEY, "services": dispatch_status(timeout=0.5)}
    except (redis.RedisError, OSError) as exc:
        return {
            "stream": settings.REDIS_STREAM_KEY,
            "services": [],
            "error": f"Redis did not answer ({type(exc).__name__})",
        }
