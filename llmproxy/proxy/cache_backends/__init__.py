"""Response-cache backends, chosen by HTTP_CACHE_BACKEND (the same small pattern as the event bus)."""

from django.conf import settings
from django.utils.module_loading import import_string

from .base import CacheBackend, CachedResponse, scoped_key

__all__ = ["BACKENDS", "BackendHolder", "CacheBackend", "CachedResponse", "make_backend", "scoped_key"]

BACKENDS = {
    "in-memory": "llmproxy.proxy.cache_backends.memory.MemoryCache",
    "memory": "llmproxy.proxy.cache_backends.memory.MemoryCache",
    "redis": "llmproxy.proxy.cache_backends.redis.RedisCache",
}


def make_backend(name: str | None = None) -> CacheBackend:
    name = name or settings.HTTP_CACHE_BACKEND
    try:
        backend: CacheBackend = import_string(BACKENDS[name])()
    except KeyError:
        raise ValueError(f"HTTP_CACHE_BACKEND={name!r} is not one of: {', '.join(sorted(BACKENDS))}") from None
    return backend


class BackendHolder:
    """The process's cache backend, made on first use (and again when HTTP_CACHE_BACKEND changes, in tests)."""

    def __init__(self) -> None:
        self._backend: CacheBackend | None = None
        self._name = ""

    def get(self) -> CacheBackend:
        backend = self._backend
        if backend is None or self._name != settings.HTTP_CACHE_BACKEND:
            backend, self._name = make_backend(), settings.HTTP_CACHE_BACKEND
            self._backend = backend
        return backend

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()
