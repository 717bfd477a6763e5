"""The event stream's consumer groups and dead letters: their names, and the figures read from them.

One consumer group per dispatch service (`llm-proxy-dispatchers-<service>`): instances of a service share
it (load balancing), different services read every event each (fan-out). Failed events go to
`<REDIS_STREAM_KEY>:dead-letter` with a `service` field. The dispatchers (`dispatch/`), the publisher's lag
warning, `/metrics` and `manage.py dispatch_status` all take the names and the figures from here.

Figures per service: `lag` (stream entries the group has not read yet, XINFO GROUPS), `pending` (read but
not acknowledged), `dead_letter` (entries of the service on the dead-letter stream). Dead letters hold whole
events, so they are counted inside Redis by a Lua script and never travel to this process.
"""

from collections.abc import Iterable
from typing import Any

import redis
from django.conf import settings

GROUP_PREFIX = "llm-proxy-dispatchers-"

# KEYS[1]: stream; ARGV[1]: first id (exclusive, "-" for all); ARGV[2]: cap (0: none); ARGV[3]: "by-service"
# to count per `service` field, anything else for the total. Returns {service, n, ...} or {n}.
_COUNT = """
local entries
if ARGV[2] == '0' then
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+')
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
end
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


def group_for(service: str, *, cli: bool = False) -> str:
    """The consumer group: one per service (fan-out); REDIS_CONSUMER_GROUP overrides it for the CLI only."""
    if cli and settings.REDIS_CONSUMER_GROUP:
        return str(settings.REDIS_CONSUMER_GROUP)
    return GROUP_PREFIX + service


def service_of(group: str) -> str:
    """The service a consumer group belongs to (a foreign group keeps its own name)."""
    return group.removeprefix(GROUP_PREFIX)


def dead_letter_key(stream_key: str | None = None) -> str:
    return f"{stream_key or settings.REDIS_STREAM_KEY}:dead-letter"


def read_figures(
    client: redis.Redis,
    stream_key: str,
    services: Iterable[str],
    *,
    max_scan: int = 0,
    consumers: bool = False,
) -> dict[str, dict[str, Any]]:
    """{service: {group, lag, pending, dead_letter[, consumers]}} for every service that has a group on the
    stream, is in `services` (configured, maybe not started yet), or has dead letters; sorted by service.

    `max_scan` caps the entries counted where Redis cannot tell a figure itself (0: count them all), so a
    scrape costs Redis bounded time. `consumers` adds each group's consumers (name, pending, idle_ms).
    `client` must decode responses. Raises redis.RedisError (or OSError) when Redis does not answer.
    """
    figures: dict[str, dict[str, Any]] = {}
    for group in _groups(client, stream_key):
        figures[service_of(group["name"])] = {
            "group": group["name"],
            "lag": _lag(client, stream_key, group, max_scan),
            "pending": int(group.get("pending") or 0),
            **({"consumers": _consumers(client, stream_key, group["name"])} if consumers else {}),
        }
    for service in services:
        if service not in figures:  # no dispatcher ran yet: everything on the stream waits
            figures[service] = _row(GROUP_PREFIX + service, int(client.xlen(stream_key)), consumers)
    for service, dead in _dead_letters(client, dead_letter_key(stream_key), max_scan).items():
        figures.setdefault(service, _row("", 0, consumers))["dead_letter"] = dead
    for row in figures.values():
        row.setdefault("dead_letter", 0)
    return dict(sorted(figures.items()))


def _row(group: str, lag: int, consumers: bool) -> dict[str, Any]:
    return {"group": group, "lag": lag, "pending": 0, **({"consumers": []} if consumers else {})}


def _groups(client: redis.Redis, stream_key: str) -> list[dict[str, Any]]:
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(stream_key)
    except redis.ResponseError:  # the stream does not exist yet: nothing published, nobody behind
        return []
    return groups


def _lag(client: redis.Redis, stream_key: str, group: dict[str, Any], max_scan: int) -> int:
    if group.get("lag") is not None:
        return int(group["lag"])
    # Redis cannot tell after deletions: count the entries after the last one delivered.
    counted = client.eval(_COUNT, 1, stream_key, "(" + group["last-delivered-id"], max_scan, "total")
    return int(counted[0])


def _consumers(client: redis.Redis, stream_key: str, group: str) -> list[dict[str, Any]]:
    return [
        {"name": c["name"], "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
        for c in client.xinfo_consumers(stream_key, group)
    ]


def _dead_letters(client: redis.Redis, key: str, max_scan: int) -> dict[str, int]:
    """Dead-letter entries by their `service` field (the oldest `max_scan` when there are more)."""
    flat: list[Any] = client.eval(_COUNT, 1, key, "-", max_scan, "by-service")
    return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
