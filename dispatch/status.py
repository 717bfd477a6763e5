"""Per-service dispatch figures for `manage.py dispatch_status` and the admin index: consumer-group lag,
pending entries, consumers, dead letters.

The figures are computed by `instrumentation.bus.groups.read_figures`, the same computation /metrics uses;
here every entry is counted (no scan cap) and each group's consumers are listed.
"""

from typing import Any

import redis
from django.conf import settings

from instrumentation.bus import groups
from llmproxy import redis as redis_clients


def dispatch_status(
    stream_key: str | None = None, *, timeout: float = redis_clients.COMMAND_TIMEOUT
) -> list[dict[str, Any]]:
    """One row per service that has a consumer group, is in DISPATCH_SERVICES, or has dead letters."""
    client = redis_clients.client(timeout=timeout)
    figures = groups.read_figures(
        client, stream_key or settings.REDIS_STREAM_KEY, settings.DISPATCH_SERVICES, consumers=True
    )
    return [
        {
            "service": service,
            "group": row["group"],
            "lag": row["lag"],
            "pending": row["pending"],
            "consumers": row["consumers"],
            "dead_letter": row["dead_letter"],
        }
        for service, row in figures.items()
    ]


def admin_dispatch_figures() -> dict[str, Any] | None:
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
