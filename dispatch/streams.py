"""Thin Redis helpers the dispatchers need beside the bus's consumer: dead letters, replay, delivery counts.

Reading the event stream itself goes through `instrumentation.bus.get_consumer()`; the names of the
consumer groups and of the dead-letter stream come from `instrumentation.bus.groups`.
"""

import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from redis.typing import EncodableT, FieldT, StreamIdT

from instrumentation.bus.groups import dead_letter_key
from llmproxy import redis as redis_clients

# Added to an event's JSON by `dispatch_replay`: only this service delivers it again (the Go reader ignores it).
REPLAY_FIELD = "Replay"


def consumer_name_for(service: str, *, cli: bool = False) -> str:
    if cli and settings.REDIS_CONSUMER_NAME:
        return settings.REDIS_CONSUMER_NAME
    return f"dispatcher-{service}-{socket.gethostname()}-{os.getpid()}"


def message_time(message_id: str) -> datetime | None:
    """When the entry was added to the stream (its id is `<unix ms>-<seq>`)."""
    try:
        return datetime.fromtimestamp(int(message_id.split("-", 1)[0]) / 1000, tz=UTC)
    except (ValueError, IndexError):
        return None


class DeadLetters:
    """`<REDIS_STREAM_KEY>:dead-letter`: entries with fields `data` (the event as published), `service`,
    `reason` and `stream_id` (the entry's id on the event stream), trimmed to about
    REDIS_DEAD_LETTER_MAX_LEN entries (0: never trimmed)."""

    def __init__(
        self, stream_key: str | None = None, url: str | None = None, *, timeout: float = redis_clients.COMMAND_TIMEOUT
    ) -> None:
        self.stream_key = stream_key or settings.REDIS_STREAM_KEY
        self.key = dead_letter_key(self.stream_key)
        self.client = redis_clients.client(url, timeout=timeout)

    def add(self, service: str, entries: list[tuple[str, str, str]]) -> None:
        """Record (stream id, data, reason) entries in one round trip."""
        # A service that rejects everything must not fill Redis: the oldest dead letters go first.
        max_len = settings.REDIS_DEAD_LETTER_MAX_LEN or None
        pipe = self.client.pipeline(transaction=False)
        for stream_id, data, reason in entries:
            fields: dict[FieldT, EncodableT] = {
                "data": data,
                "service": service,
                "reason": reason[:1000],
                "stream_id": stream_id,
            }
            pipe.xadd(self.key, fields, maxlen=max_len, approximate=True)
        pipe.execute()

    def deliveries(self, group: str, ids: list[str]) -> dict[str, int]:
        """How many times each pending entry was delivered (XPENDING's extended form; reads do not say)."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(self.stream_key, group, min=entry_id, max=entry_id, count=1)
        return {row["message_id"]: row["times_delivered"] for rows in pipe.execute() for row in rows}

    def touch(self, group: str, consumer: str, ids: list[str]) -> None:
        """Reset the idle time of entries `consumer` is still sending (XCLAIM ... JUSTID counts no delivery)."""
        claimed: list[StreamIdT] = list(ids)
        self.client.xclaim(self.stream_key, group, consumer, 0, claimed, justid=True)

    def entries(self, service: str | None = None, batch: int = 500) -> Iterator[tuple[str, dict[str, str]]]:
        """(dead-letter id, fields) of `service` (all when None), oldest first."""
        start = "-"
        while True:
            chunk: list[tuple[str, dict[str, str]]] = self.client.xrange(self.key, start, "+", count=batch)  # type: ignore[assignment]  # a decoding client answers str
            for entry_id, fields in chunk:
                if service is None or fields.get("service") == service:
                    yield entry_id, fields
            if len(chunk) < batch:
                return
            start = "(" + chunk[-1][0]

    def count(self, service: str) -> int:
        return sum(1 for _ in self.entries(service))

    def replay(self, service: str, limit: int | None = None) -> int:
        """Put dead letters of `service` back on the event stream for that service only; returns how many."""
        moved = 0
        for entry_id, fields in self.entries(service):
            if limit is not None and moved >= limit:
                break
            data = _mark_replay(fields["data"], service, fields.get("stream_id", ""))
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(self.stream_key, {"data": data}, maxlen=settings.REDIS_STREAM_MAX_LEN or None, approximate=True)
            pipe.xdel(self.key, entry_id)
            pipe.execute()
            moved += 1
        return moved


def _mark_replay(data: str, service: str, stream_id: str) -> str:
    try:
        event = json.loads(data)
    except ValueError:
        return data  # stays unparseable; it will come back here with the same reason
    if isinstance(event, dict):
        event[REPLAY_FIELD] = {"service": service, "stream_id": stream_id}
        return json.dumps(event, separators=(",", ":"))
    return data
