"""The in-memory twin: keeps what it was sent, and fails on request (for tests and dry runs)."""

from collections.abc import Callable
from typing import Any

from dispatch.backends.base import Backend, DeliveryError


class MemoryBackend(Backend):
    name = "memory"
    batch_wait = 0.0

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        super().__init__(endpoint=endpoint or "memory")
        self.batches: list[list[dict[str, Any]]] = []
        self.attempts = 0
        self._failures: list[DeliveryError] = []
        self._poison: list[tuple[Callable[[dict[str, Any]], bool], Exception]] = []

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [payload for batch in self.batches for payload in batch]

    def fail_next(self, times: int = 1, *, permanent: bool = False, message: str = "scripted failure") -> None:
        self._failures.extend(DeliveryError(message, permanent=permanent) for _ in range(times))

    def raise_on(self, match: Callable[[dict[str, Any]], bool], error: Exception) -> None:
        """Raise `error` for any batch holding a payload that `match`es, as an encoder choking on one value does."""
        self._poison.append((match, error))

    def send(self, payloads: list[dict[str, Any]]) -> None:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        for match, error in self._poison:
            if any(match(payload) for payload in payloads):
                raise error
        self.batches.append(list(payloads))
