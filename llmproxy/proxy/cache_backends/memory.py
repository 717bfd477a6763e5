"""In-process LRU cache, bounded by HTTP_CACHE_MAX_ENTRIES and HTTP_CACHE_MAX_BYTES.

The embedded default. Each web process has its own copy, so use Redis with more than one process.
"""

import threading
import time
from collections import OrderedDict

from django.conf import settings

from .base import CacheBackend, CachedResponse, key_part


class MemoryCache(CacheBackend):
    def __init__(self, *, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries or settings.HTTP_CACHE_MAX_ENTRIES
        self.max_bytes = max_bytes or settings.HTTP_CACHE_MAX_BYTES
        # key -> (entry, expires at (monotonic), size); a lock because purges arrive from other threads
        self._entries: OrderedDict[str, tuple[CachedResponse, float, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    async def aget(self, key: str) -> CachedResponse | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            if item[1] <= time.monotonic():
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return item[0]

    async def aset(self, key: str, entry: CachedResponse, ttl: float) -> bool:
        size = entry.size
        if ttl <= 0 or size > self.max_bytes:
            return False
        with self._lock:
            self._remove(key)
            self._entries[key] = (entry, time.monotonic() + ttl, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))
        return True

    def purge(self, key: str, *, prefix: bool = False) -> int:
        with self._lock:
            doomed = [k for k in self._entries if (key_part(k).startswith(key) if prefix else key_part(k) == key)]
            for k in doomed:
                self._remove(k)
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def _remove(self, key: str) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self._bytes -= item[2]
