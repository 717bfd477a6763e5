"""The in-memory bus's dispatcher: events published by this very process, handed to the drain loop.

Only the `file` service runs this way (as in the reference): nothing is durable, so there is no
redelivery and no dead-letter stream; a failed batch is logged after its retries.
"""

import logging
import queue
from datetime import UTC, datetime

from instrumentation.bus import Message, StreamConsumer
from instrumentation.events import Event

logger = logging.getLogger("dispatch")


class InProcessConsumer(StreamConsumer):
    """A StreamConsumer over an in-process queue filled by an in-memory bus subscription."""

    def __init__(self, capacity: int) -> None:
        self.queue: queue.Queue[str] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self._next_id = 0

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event.to_json())
        except queue.Full:
            self.dropped += 1

    def ensure_group(self, group: str) -> None:
        pass

    def read(self, group: str, consumer: str, count: int, block_ms: int | None, pending: bool = False) -> list[Message]:
        if pending:
            return []
        messages: list[Message] = []
        try:
            first = self.queue.get(timeout=block_ms / 1000) if block_ms else self.queue.get_nowait()
            messages.append(self._message(first))
            while len(messages) < count:
                messages.append(self._message(self.queue.get_nowait()))
        except queue.Empty:
            pass
        return messages

    def _message(self, data: str) -> Message:
        self._next_id += 1
        return f"{int(datetime.now(UTC).timestamp() * 1000)}-{self._next_id}", data

    def ack(self, group: str, ids: list[str]) -> None:
        pass

    def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        return []


class LoggedDeadLetters:
    """Where the in-process dispatcher's undeliverable events end up: the error log."""

    key = "the error log"

    def deliveries(self, group: str, ids: list[str]) -> dict[str, int]:
        return {}  # an in-process queue hands each event out once

    def touch(self, group: str, consumer: str, ids: list[str]) -> None:
        pass  # nobody else can claim them

    def add(self, service: str, entries: list[tuple[str, str, str]]) -> None:
        for _message_id, data, reason in entries:
            logger.error("%s: event not delivered (%s): %s", service, reason, data[:2000])
