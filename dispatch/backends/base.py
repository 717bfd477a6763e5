"""The dispatch backend interface: turn an event into a payload, deliver a batch of payloads."""

from datetime import datetime
from typing import Any

import httpx

from dispatch.transform import event_to_payload
from instrumentation.events import Event
from instrumentation.jsonsafe import dumps_bytes

HTTP_TIMEOUT = 30.0  # the reference's client timeout
USER_AGENT = "llm-proxy-dispatcher"
JSON_HEADERS = {"Content-Type": "application/json"}


class BackendConfigError(ValueError):
    """A backend cannot start: the message names the flag or variable to set."""


class DeliveryError(Exception):
    """A batch (or part of it) was not accepted.

    `permanent` failures are not retried (they go to the dead-letter stream). `failures`, when set,
    maps the index of each refused payload to its own DeliveryError, or to the unexpected exception
    sending it raised (permanent: it will not get better); the other payloads were accepted.
    """

    def __init__(self, message: str, *, permanent: bool = False, failures: dict[int, Exception] | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.failures = failures


class Backend:
    """Delivers a batch of payloads to one service. Raise DeliveryError on failure."""

    name = "base"
    # Seconds to wait for a batch to fill before sending a partial one (None: DISPATCHER_FLUSH_INTERVAL).
    batch_wait: float | None = None

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        self.endpoint = endpoint
        self.api_key = api_key

    def payload(self, event: Event, received_at: datetime | None = None) -> dict[str, Any] | None:
        """What this service receives for one event; None skips it (non-POST events)."""
        return event_to_payload(event, received_at=received_at)

    def send(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and files."""

    def describe(self) -> str:
        """Where events go, for logs (never the key)."""
        return self.endpoint


class HttpBackend(Backend):
    """A backend that POSTs JSON with a bearer key over one keep-alive connection pool."""

    default_endpoint = ""
    key_variable = ""

    def __init__(self, *, endpoint: str = "", api_key: str = "") -> None:
        if not api_key:
            raise BackendConfigError(
                f"The {self.name} dispatcher needs an API key: pass --api-key KEY "
                f"or set {self.key_variable} (or LLM_PROXY_API_KEY)."
            )
        super().__init__(endpoint=endpoint or self.default_endpoint, api_key=api_key)
        self.client = httpx.Client(
            timeout=HTTP_TIMEOUT,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
        )

    def post(self, body: dict[str, Any]) -> httpx.Response:
        """POST `body`; network errors, 408, 429 and 5xx are transient, other non-2xx answers permanent."""
        try:
            # Encoded here, not by httpx's json=: a lone surrogate or a NaN in a body must not raise.
            response = self.client.post(self.endpoint, content=dumps_bytes(body), headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code < 300:
            return response
        transient = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryError(
            f"{self.name} answered {response.status_code}: {response.text[:300]}", permanent=not transient
        )

    def close(self) -> None:
        self.client.close()
