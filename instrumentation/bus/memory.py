"""In-memory bus: one process, fan-out to in-process subscribers (FILE_EVENT_LOG, tests), as the reference's
in-memory bus."""

from django.conf import settings

from instrumentation.bus.queued import QueuedBus
from instrumentation.events import Event


class InMemoryBus(QueuedBus):
    """Bounded by OBSERVABILITY_BUFFER_SIZE events and OBSERVABILITY_BUFFER_BYTES; a full buffer drops new events."""

    name = "in-memory"

    @classmethod
    def from_settings(cls) -> "InMemoryBus":
        return cls(capacity=settings.OBSERVABILITY_BUFFER_SIZE, max_bytes=settings.OBSERVABILITY_BUFFER_BYTES)

    async def awrite(self, batch: list[Event]) -> None:
        # Subscribers already ran in _deliver_local; handing the batch to them is what "published" means here.
        self.count_published(len(batch))
