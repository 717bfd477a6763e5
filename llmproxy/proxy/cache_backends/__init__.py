"""Response-cache backends, chosen by HTTP_CACHE_BACKEND (the same small pattern as the event bus)."""

from django.conf import settings
from django.utils.module_loading import import_string

from llmproxy.proxy import state

from .base import CacheBackend, CachedResponse, scoped_key

__all__ = ["BACKENDS", "CacheBackend", "CachedResponse", "get_backend", "make_backend", "reset_for_tests", "scoped_key"]

BACKENDS = {
    "in-memory": "llmproxy.proxy.cache_backends.memory.MemoryCache",
    "memory": "llmproxy.proxy.cache_backends.memory.MemoryCache",
    "redis": "llmproxy.proxy.cache_backends.redis.RedisCache",
}

_backend: CacheBackend | None = None
_backend_name = ""


def make_backend(name: str | None = None) -> CacheBackend:
    name = name or settings.HTTP_CACHE_BACKEND
    try:
        return import_string(BACKENDS[name])()
    except KeyError:
        raise ValueError(f"HTTP_CACHE_BACKEND={name!r} is not one of: {', '.join(sorted(BACKENDS))}") from None


def get_backend() -> CacheBackend:
    """The process's cache backend (re-created when the setting changes, e.g. between tests)."""
    global _backend, _backend_name
    if _backend is None or _backend_name != settings.HTTP_CACHE_BACKEND:
        _backend, _backend_name = make_backend(), settings.HTTP_CACHE_BACKEND
    return _backend


@state.on_reset
def reset_for_tests() -> None:
    global _backend, _backend_name
    _backend, _backend_name = None, ""
