"""The ASGI callables' types as the proxy uses them: those of django-stubs' ASGIHandler, which the lean handler
overrides (asgiref's TypedDicts would cost casts everywhere)."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


class ProxyRequest(Protocol):
    """A /v1 request as the view sees it: Django's ASGIRequest plus what the proxy notes on it on the way.

    For the type checker only: the lean handler makes a plain ASGIRequest, and the view sets these
    attributes as it goes (instrumentation reads them with getattr and a default).
    """

    method: str
    path: str
    META: dict[str, Any]
    scope: Scope
    resolver_match: Any

    proxy_request_id: str
    proxy_token_id: str
    proxy_project_id: str
    proxy_skip_event: bool
    proxy_refused: str
    proxy_body_error: Exception | None
    proxy_cache: Any  # cache.CacheLookup

    @property
    def body(self) -> bytes: ...

    def close(self) -> None: ...
