"""Redis Streams bus, as the reference's: `XADD <key> MAXLEN ~ <n> * data <json>` and consumer groups.

Publishing: the request appends to a bounded buffer (EVENT_PUBLISH_QUEUE_SIZE events and
OBSERVABILITY_BUFFER_BYTES); the drain task writes pipelined batches with redis.asyncio. When Redis is
down or slow the batch in hand is retried with backoff while new events wait in the buffer (both count
towards the byte bound and show in /metrics); once the buffer is full, new events are dropped and
counted. Nothing here runs on the request path, and start-up never needs Redis.

Consuming (`RedisStreamConsumer`): synchronous redis-py for Celery tasks and the dispatcher command.
"""

import asyncio
import logging
import math
import time
from typing import Any

import redis
import redis.asyncio as aredis
from django.conf import settings

from instrumentation.bus.base import Message, StreamConsumer
from instrumentation.bus.groups import service_of
from instrumentation.bus.queued import DEFAULT_MAX_BYTES, QueuedBus
from instrumentation.events import Event
from instrumentation.metrics_dispatch import warn_about_lag
from llmproxy import redis as redis_clients

logger = logging.getLogger("instrumentation.bus")

CONNECT_TIMEOUT = 1.0  # seconds; a Redis that does not accept a connection by then counts as down
WRITE_TIMEOUT = 3.0  # seconds for one pipelined batch
RETRY_MAX_DELAY = 1.0
LAG_CHECK_INTERVAL = 10.0  # seconds between two looks at the groups' lag, made after a successful write
BATCH_MAX_BYTES = 4 * 1024 * 1024  # one pipeline stays a few MB even with large captured bodies
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OSError, asyncio.TimeoutError)


class RedisStreamsBus(QueuedBus):
    name = "redis-streams"
    linger = 0.002  # lets a batch collect the events of a few concurrent requests: one round trip for all

    def __init__(
        self, *, url: str, stream_key: str, max_len: int, capacity: int, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        super().__init__(capacity=capacity, max_bytes=max_bytes)
        self.url = url
        self.stream_key = stream_key
        self.max_len = max_len
        self._connections: dict[int, aredis.Connection] = {}  # per drain-task generation (one event loop each)
        self._command_head = _xadd_head(stream_key, max_len)
        self._redis_down = False
        self._next_lag_check = 0.0

    @classmethod
    def from_settings(cls) -> "RedisStreamsBus":
        return cls(
            url=settings.REDIS_URL,
            stream_key=settings.REDIS_STREAM_KEY,
            max_len=settings.REDIS_STREAM_MAX_LEN,
            capacity=settings.EVENT_PUBLISH_QUEUE_SIZE,
            max_bytes=settings.OBSERVABILITY_BUFFER_BYTES,
        )

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "stream": self.stream_key, "redis_available": not self._redis_down}

    @property
    def connected(self) -> bool:
        """False from the first failed write until one succeeds again (the publisher is in its retry loop)."""
        return not self._redis_down

    def _connection(self) -> aredis.Connection:
        """This drain task's connection: one, since one batch is in flight at a time."""
        connection = self._connections.get(self._generation)
        if connection is None:
            # redis-py's own retries would hold the batch for seconds; the drain loop retries instead.
            pool = redis_clients.async_pool(self.url, timeout=WRITE_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
            connection = self._connections[self._generation] = pool.make_connection()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        return connection

    async def awrite(self, batch: list[Event]) -> None:
        for chunk in self._encode(batch):
            await self._awrite_retrying(chunk)

    def _encode(self, batch: list[Event]) -> list[list[bytes]]:
        chunks: list[list[bytes]] = []
        current: list[bytes] = []
        size = 0
        for event in batch:
            data = event.to_bytes()
            if current and size + len(data) > BATCH_MAX_BYTES:
                chunks.append(current)
                current, size = [], 0
            current.append(data)
            size += len(data)
        if current:
            chunks.append(current)
        return chunks

    async def _awrite_retrying(self, payloads: list[bytes]) -> None:
        delay = 0.05
        generation = self._generation
        try:
            while True:
                try:
                    results = await self._xadd(payloads)
                    break
                except _TRANSIENT as exc:
                    self._redis_down = True
                    if generation != self._generation:
                        self.count_dropped(len(payloads), "the publisher was replaced")
                        return
                    self._warn.warning("event bus: Redis unavailable (%s); retrying, events wait in the buffer", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
        except asyncio.CancelledError:
            self.count_dropped(len(payloads), "Redis did not answer before shutdown")
            raise
        if self._redis_down:
            self._redis_down = False
            logger.warning("event bus: Redis is reachable again; publishing resumed")
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            self.count_dropped(len(failed), "Redis refused XADD: %s", failed[0])
        self.count_published(len(results) - len(failed))
        if self.max_len > 0 and time.monotonic() >= self._next_lag_check:
            await self._acheck_lag()

    async def _acheck_lag(self) -> None:
        """Warn when a group falls so far behind that MAXLEN trimming would drop events it has not read.

        Done here as well as at scrape time so that the warning does not depend on anyone reading
        /metrics; it costs one XINFO GROUPS per LAG_CHECK_INTERVAL on the publisher's connection.
        """
        self._next_lag_check = time.monotonic() + LAG_CHECK_INTERVAL
        connection = self._connection()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connection.send_command("XINFO", "GROUPS", self.stream_key, check_health=False)
                groups = await connection.read_response(disable_decoding=True, timeout=math.inf)
        except redis.ResponseError:  # no stream or no group yet: nobody behind
            return
        except asyncio.CancelledError:
            await connection.disconnect()
            raise
        except Exception:  # slow or gone: the next write reconnects and reports an outage, if there is one
            await connection.disconnect()  # the reply may still come: never reuse the connection
            return
        try:
            warn_about_lag(_lags(groups), self.max_len)
        except Exception:  # a look at the lag must never cost the batch that was just written
            logger.debug("event bus: reading the groups' lag failed", exc_info=True)

    async def _xadd(self, payloads: list[bytes]) -> list[Any]:
        """One pipelined write of `XADD <key> [MAXLEN ~ n] * data <json>` per payload; a reply (id or error) each.

        The commands are packed here rather than through redis-py's Pipeline, whose per-command
        bookkeeping costs more CPU than the rest of publishing together.
        """
        head = self._command_head
        packed: list[bytes] = []
        for data in payloads:
            packed += (head, b"$%d\r\n" % len(data), data, b"\r\n")
        connection = self._connection()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT + CONNECT_TIMEOUT):
                await connection.send_packed_command(b"".join(packed), check_health=False)
                results = []
                for _ in payloads:
                    try:
                        # One deadline for the whole batch (above) instead of a timer per reply.
                        results.append(await connection.read_response(disable_decoding=True, timeout=math.inf))
                    except redis.ResponseError as exc:  # this entry was refused; the connection is still in step
                        results.append(exc)
                return results
        except BaseException:
            await connection.disconnect()  # never reuse a connection with unread replies
            raise

    async def arelease(self, generation: int) -> None:
        connection = self._connections.pop(generation, None)
        if connection is not None:
            try:
                await connection.disconnect()
            except Exception:  # the loop may be closing; the socket goes with it
                pass


def _lags(groups: list[Any]) -> dict[str, dict[str, Any]]:
    """{service: {"lag": n}} from XINFO GROUPS replies (groups whose lag Redis cannot tell are skipped)."""
    lags = {}
    for group in groups or []:
        # A map with RESP3 or redis-py's own parser, a flat [name, value, ...] list with plain RESP2.
        fields = group if isinstance(group, dict) else dict(zip(group[::2], group[1::2], strict=False))
        lag = fields.get(b"lag")
        if isinstance(lag, int):
            lags[service_of(fields[b"name"].decode(errors="replace"))] = {"lag": lag}
    return lags


def _xadd_head(stream_key: str, max_len: int) -> bytes:
    """RESP for `XADD <key> [MAXLEN ~ <n>] * data`, to be followed by the payload as the last bulk string."""
    args = [b"XADD", stream_key.encode()]
    if max_len > 0:
        args += [b"MAXLEN", b"~", str(max_len).encode()]
    args += [b"*", b"data"]
    return b"*%d\r\n" % (len(args) + 1) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class RedisStreamConsumer(StreamConsumer):
    """Consumer-group reads of the event stream (XREADGROUP / XACK / XAUTOCLAIM), synchronous."""

    def __init__(self, *, url: str, stream_key: str, block_timeout: float) -> None:
        self.stream_key = stream_key
        # A blocking XREADGROUP must not hit the socket timeout: its read timeout exceeds the block time.
        self.client = redis_clients.blocking_client(url, block_seconds=block_timeout)

    @classmethod
    def from_settings(cls, *, stream_key: str | None = None, url: str | None = None) -> "RedisStreamConsumer":
        return cls(
            url=url or settings.REDIS_URL,
            stream_key=stream_key or settings.REDIS_STREAM_KEY,
            block_timeout=settings.REDIS_STREAM_BLOCK_TIME,
        )

    def ensure_group(self, group: str) -> None:
        """XGROUP CREATE <key> <group> 0 MKSTREAM; an existing group (BUSYGROUP) is fine."""
        try:
            self.client.xgroup_create(self.stream_key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, group: str, consumer: str, count: int, block_ms: int | None, pending: bool = False) -> list[Message]:
        # Pending (id 0) is read without BLOCK: it answers at once with this consumer's unacknowledged entries.
        response: Any = self.client.xreadgroup(
            group,
            consumer,
            {self.stream_key: "0" if pending else ">"},
            count=count,
            block=None if pending or not block_ms else block_ms,
        )
        entries = [entry for _stream, stream_entries in response or [] for entry in stream_entries]
        return self._messages(group, entries)

    def ack(self, group: str, ids: list[str]) -> None:
        if ids:
            self.client.xack(self.stream_key, group, *ids)

    def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        """XAUTOCLAIM from the start of the pending list, following the cursor until `count` entries or its end."""
        claimed: list[Any] = []
        cursor = "0-0"
        for _ in range(10):
            result = self.client.xautoclaim(
                self.stream_key, group, consumer, min_idle_time=min_idle_ms, start_id=cursor, count=count - len(claimed)
            )
            cursor, entries = result[0], result[1]
            claimed.extend(entries)
            if cursor == "0-0" or len(claimed) >= count:
                break
        return self._messages(group, claimed)

    def _messages(self, group: str, entries: list[Any]) -> list[Message]:
        """(id, data) pairs; entries without `data` (trimmed while pending, or foreign) are acked and skipped."""
        messages, dead = [], []
        for entry_id, fields in entries:
            data = (fields or {}).get("data")
            if data is None:
                dead.append(entry_id)
            else:
                messages.append((entry_id, data))
        if dead:
            logger.warning("event stream %s: acknowledged %d entries without a data field", self.stream_key, len(dead))
            self.ack(group, dead)
        return messages
