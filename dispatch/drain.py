"""The drain loop shared by the Celery tasks and `manage.py dispatcher`.

Read a batch through the service's consumer group, transform, send, and XACK only what the service
accepted. Transient failures are retried (3 times, 1 s / 2 s / 4 s, capped at 30 s); permanent ones,
and those that exhaust their retries, go to the dead-letter stream and are then acknowledged.
Any other exception belongs to one event (a value its encoder chokes on): the batch is split in halves
until that event is found, and it alone is dead-lettered, since trying it again cannot help.
After a restart the consumer's own pending entries come first; entries a crashed consumer left
pending are claimed once idle for REDIS_STREAM_CLAIM_TIME. An entry already delivered more than
`max_deliveries` times (each time its reader died on it) is dead-lettered without another try.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import ujson

from dispatch.backends import Backend, DeliveryError
from dispatch.streams import REPLAY_FIELD, message_time
from instrumentation.bus import Message, StreamConsumer
from instrumentation.events import Event

logger = logging.getLogger("dispatch")

RETRIES = 3
MAX_BACKOFF = 30.0


@dataclass
class Item:
    """One stream entry on its way to the service."""

    message_id: str
    data: str
    payload: dict[str, Any]


@dataclass
class DrainOptions:
    service: str
    group: str
    consumer: str
    batch_size: int = 100
    block_seconds: float = 1.0
    claim_seconds: float = 30.0
    retry_base: float = 1.0
    batch_wait: float = 0.0  # how long to wait for a partial batch to fill
    read_count: int = 100  # entries per XREADGROUP (REDIS_STREAM_BATCH_SIZE); a batch may take several reads
    max_deliveries: int = 5  # DISPATCH_MAX_DELIVERIES

    @property
    def per_read(self) -> int:
        return max(1, min(self.read_count, self.batch_size))


class DeadLetterSink(Protocol):
    """Where a drainer puts what it cannot deliver: `dispatch.streams.DeadLetters` (Redis), or the error log
    of the in-process dispatcher (`dispatch.inprocess.LoggedDeadLetters`)."""

    key: str

    def deliveries(self, group: str, ids: list[str]) -> dict[str, int]: ...

    def touch(self, group: str, consumer: str, ids: list[str]) -> None: ...

    def add(self, service: str, entries: list[tuple[str, str, str]]) -> None: ...


class Drainer:
    def __init__(
        self,
        backend: Backend,
        consumer: StreamConsumer,
        dead_letters: DeadLetterSink,
        options: DrainOptions,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self.backend = backend
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.options = options
        self.stop = stop or threading.Event()
        self.recovering = True  # own pending entries first (a restart after a crash)
        self.last_claim = 0.0
        self.delivered = 0
        self.dead = 0
        self.skipped = 0  # acknowledged without sending: not for this service (non-POST, refused, replays)

    def start(self) -> "Drainer":
        self.consumer.ensure_group(self.options.group)
        return self

    def run(self, *, seconds: float | None = None, until_idle: bool = False) -> int:
        """Drain until stopped, `seconds` passed or (until_idle) nothing new came; returns entries handled."""
        deadline = None if seconds is None else time.monotonic() + seconds
        handled = 0
        while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            count = self.step(remaining)
            handled += count
            if count == 0 and until_idle:
                break
        return handled

    def step(self, max_wait: float | None = None) -> int:
        """Gather one batch (waiting at most `max_wait` seconds for new entries) and deliver it."""
        messages, redelivered = self._gather(max_wait)
        count = len(messages)
        if redelivered and messages:
            messages = self._drop_overdelivered(messages)
        if messages:
            self.deliver(messages)
        return count

    # --- reading ----------------------------------------------------------------------------------

    def _gather(self, max_wait: float | None) -> tuple[list[Message], bool]:
        """A batch, and whether it was delivered before (own pending entries, or claimed ones)."""
        o = self.options
        if self.recovering:
            own = self.consumer.read(o.group, o.consumer, o.batch_size, None, pending=True)
            if own:
                return own, True
            self.recovering = False
        if time.monotonic() - self.last_claim >= min(o.claim_seconds, 5.0):
            claimed = self._claim()
            if claimed:
                return claimed, True
        block = o.block_seconds if max_wait is None else min(o.block_seconds, max_wait)
        messages = self.consumer.read(o.group, o.consumer, o.per_read, max(1, int(block * 1000)))
        if messages and o.batch_wait > 0:
            messages += self._fill(len(messages), time.monotonic() + o.batch_wait)
        elif not messages:
            return self._claim(), True
        return messages, False

    def _fill(self, have: int, deadline: float) -> list[Message]:
        """Keep reading until the batch is full, the wait is over, or we are asked to stop (then send what we have)."""
        o = self.options
        more: list[Message] = []
        while have + len(more) < o.batch_size and not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            block_ms = max(1, int(min(left, o.block_seconds, 0.5) * 1000))
            more += self.consumer.read(o.group, o.consumer, min(o.per_read, o.batch_size - have - len(more)), block_ms)
        return more

    def _claim(self) -> list[Message]:
        o = self.options
        self.last_claim = time.monotonic()
        claimed = self.consumer.claim(o.group, o.consumer, int(o.claim_seconds * 1000), o.batch_size)
        if claimed:
            logger.warning("%s: claimed %d entries left pending by another consumer", o.service, len(claimed))
        return claimed

    def _drop_overdelivered(self, messages: list[Message]) -> list[Message]:
        """Dead-letter entries read too often without an ack: whatever kills their reader would kill us too."""
        limit = self.options.max_deliveries
        counts = self.dead_letters.deliveries(self.options.group, [message_id for message_id, _ in messages])
        over = [(mid, data, counts[mid]) for mid, data in messages if counts.get(mid, 0) > limit]
        if not over:
            return messages
        self._dead_letter(
            [
                (mid, data, f"delivered {n} times without an ack (DISPATCH_MAX_DELIVERIES={limit})")
                for mid, data, n in over
            ]
        )
        dropped = {mid for mid, _, _ in over}
        return [message for message in messages if message[0] not in dropped]

    # --- delivering -------------------------------------------------------------------------------

    def deliver(self, messages: list[Message]) -> None:
        items, skipped, broken = self._prepare(messages)
        if broken:
            self._dead_letter(broken)
        if skipped:
            self.consumer.ack(self.options.group, skipped)
            self.skipped += len(skipped)
        if items:
            with KEEPER.holding(self, [item.message_id for item in items]):
                self._send_with_retries(items)

    def _prepare(self, messages: list[Message]) -> tuple[list[Item], list[str], list[tuple[str, str, str]]]:
        items, skipped, broken = [], [], []
        for message_id, data in messages:
            try:
                raw = ujson.loads(data)
                event = Event.from_dict(raw)
            except Exception as exc:  # whatever a stranger's entry makes the parser raise, it is this entry's
                broken.append((message_id, data, f"unparseable event: {type(exc).__name__}: {exc}"))
                continue
            replay = raw.get(REPLAY_FIELD) if isinstance(raw.get(REPLAY_FIELD), dict) else {}
            if replay and replay.get("service") != self.options.service:
                skipped.append(message_id)  # re-queued for another service
                continue
            received = message_time(replay.get("stream_id") or message_id)
            try:
                payload = self.backend.payload(event, received)
            except Exception as exc:  # a transform bug must not block the stream: keep the event, move on
                logger.exception("%s: cannot transform event %s", self.options.service, event.request_id)
                broken.append((message_id, data, f"transform failed: {type(exc).__name__}: {exc}"))
                continue
            if payload is None:
                skipped.append(message_id)  # not dispatched (only POST events are)
            else:
                items.append(Item(message_id, data, payload))
        return items, skipped, broken

    def _send_with_retries(self, items: list[Item]) -> None:
        attempt = 0
        while items:
            items = self._settle(items, self._attempt(items), final=attempt >= RETRIES)
            if not items:
                return
            delay = min(self.options.retry_base * 2**attempt, MAX_BACKOFF)
            logger.warning(
                "%s: %d events not accepted, retry %d in %.1fs", self.options.service, len(items), attempt + 1, delay
            )
            if self.stop.wait(delay):
                return  # stopping: the entries stay pending and come back first on the next start
            attempt += 1

    def _attempt(self, items: list[Item]) -> dict[int, Exception]:
        """Send `items`; return the failure of each one not accepted, by index (empty: all accepted)."""
        try:
            self.backend.send([item.payload for item in items])
            return {}
        except DeliveryError as exc:
            return dict(exc.failures) if exc.failures is not None else dict.fromkeys(range(len(items)), exc)
        except Exception as exc:
            if len(items) == 1:
                logger.error("%s: cannot send one event", self.options.service, exc_info=exc)
                return {0: exc}
            return self._bisect(items)

    def _bisect(self, items: list[Item]) -> dict[int, Exception]:
        """Send each half on its own, so that an exception raised by one event stays with that event."""
        middle = len(items) // 2
        failures = self._attempt(items[:middle])
        outage = next((f for f in failures.values() if isinstance(f, DeliveryError) and not f.permanent), None)
        if outage is not None:  # the service is unreachable: the other half waits for the retry
            return {**failures, **dict.fromkeys(range(middle, len(items)), outage)}
        return {**failures, **{middle + i: f for i, f in self._attempt(items[middle:]).items()}}

    def _settle(self, items: list[Item], failures: dict[int, Exception], *, final: bool) -> list[Item]:
        """Ack what was accepted, dead-letter what failed for good; return what to retry."""
        self._accept([item for i, item in enumerate(items) if i not in failures])
        retry, dead = [], []
        for index, failure in sorted(failures.items()):
            item = items[index]
            if not isinstance(failure, DeliveryError):  # a bug or a value the encoder cannot take: permanent
                dead.append((item.message_id, item.data, f"failed: {type(failure).__name__}: {failure}"))
            elif failure.permanent:
                dead.append((item.message_id, item.data, f"rejected: {failure}"))
            elif final:
                dead.append((item.message_id, item.data, f"gave up after {RETRIES + 1} attempts: {failure}"))
            else:
                retry.append(item)
        if dead:
            self._dead_letter(dead)
        return retry

    def _accept(self, items: list[Item]) -> None:
        if items:
            self.consumer.ack(self.options.group, [item.message_id for item in items])
            self.delivered += len(items)

    def _dead_letter(self, entries: list[tuple[str, str, str]]) -> None:
        # Recorded before the ack: if Redis fails in between, the entry is redelivered, never lost.
        self.dead_letters.add(self.options.service, entries)
        self.consumer.ack(self.options.group, [message_id for message_id, _, _ in entries])
        self.dead += len(entries)
        logger.error(
            "%s: %d events moved to %s: %s", self.options.service, len(entries), self.dead_letters.key, entries[0][2]
        )


class Keeper:
    """One thread per process that keeps the entries of batches being sent from looking abandoned.

    Other consumers claim entries idle for REDIS_STREAM_CLAIM_TIME, which is how a dead consumer's work is
    recovered; a living one that spends longer on a batch (an outage: 30 s timeouts and backoff) would lose
    it too, and the events would be delivered twice. So while a batch is out, its entries are touched every
    third of the claim time (at least every second); once the process dies, the touches stop and the claim
    time runs.
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[Drainer, list[str]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    @contextmanager
    def holding(self, drainer: Drainer, ids: list[str]) -> Iterator[None]:
        key = id(ids)
        with self._lock:
            self._held[key] = (drainer, ids)
            if self._thread is None or not self._thread.is_alive():  # also after a fork (Celery's pool)
                self._thread = threading.Thread(target=self._run, name="dispatch-keeper", daemon=True)
                self._thread.start()
        self._wake.set()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = list(self._held.values())
            if not held:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            # A batch taken out meanwhile waits at most two intervals (two thirds of the claim time).
            time.sleep(min([drainer.options.claim_seconds / 3 for drainer, _ in held] + [1.0]))
            for drainer, ids in held:
                if id(ids) in self._held:  # still out
                    self._touch(drainer, ids)

    @staticmethod
    def _touch(drainer: Drainer, ids: list[str]) -> None:
        try:
            drainer.dead_letters.touch(drainer.options.group, drainer.options.consumer, ids)
        except Exception:  # Redis away: the batch may be claimed by another consumer, nothing worse
            logger.warning("%s: cannot keep %d entries in flight", drainer.options.service, len(ids), exc_info=True)


KEEPER = Keeper()
