"""The response-cache backend interface and the stored entry.

Backends store entries under `<project id>:<key>`, where `<key>` is the reference's hex cache key.
The project part keeps tenants apart; the key part is what operators see in
`X-PROXY-CACHE-KEY` and what a purge names, in every project at once.
"""

import base64
import json
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class CachedResponse:
    """One stored upstream answer: status, headers (canonical name -> values), the whole body."""

    status_code: int
    headers: dict[str, list[str]]
    body: bytes
    vary: str = ""
    # sha256 of the request's values of the Vary headers when the entry was stored ("" when no Vary)
    vary_key: str = ""
    stored_at: float = field(default_factory=time.time)
    # validated response headers per cache status, built on the first hit (the in-memory backend reuses entries)
    served: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict, repr=False, compare=False)

    def header(self, name: str) -> str:
        """First value of a header, looked up case-insensitively ("" when absent)."""
        lowered = name.lower()
        for key, values in self.headers.items():
            if key.lower() == lowered and values:
                return values[0]
        return ""

    @property
    def size(self) -> int:
        """Approximate bytes the entry occupies, for the in-memory byte bound."""
        return len(self.body) + sum(len(k) + sum(len(v) for v in vs) for k, vs in self.headers.items()) + 128

    def to_json(self) -> bytes:
        """The reference's Redis value (`status_code`, `headers`, base64 `body`, `vary`) plus our two fields."""
        return json.dumps(
            {
                "status_code": self.status_code,
                "headers": self.headers,
                "body": base64.b64encode(self.body).decode(),
                "vary": self.vary,
                "vary_key": self.vary_key,
                "stored_at": self.stored_at,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "CachedResponse":
        data = json.loads(raw)
        return cls(
            status_code=int(data["status_code"]),
            headers={str(k): [str(v) for v in vs] for k, vs in (data.get("headers") or {}).items()},
            body=base64.b64decode(data.get("body") or ""),
            vary=data.get("vary") or "",
            vary_key=data.get("vary_key") or "",
            stored_at=float(data.get("stored_at") or time.time()),
        )


def scoped_key(project_id: str, key: str) -> str:
    return f"{project_id}:{key}"


def key_part(stored_key: str) -> str:
    """The reference key inside a scoped key (project ids are UUIDs and keys hold no ':')."""
    return stored_key.rsplit(":", 1)[-1]


class CacheBackend:
    """Stores cached responses. `aget`/`aset` run on the request path and never raise; `purge` is for operators."""

    async def aget(self, key: str) -> CachedResponse | None:
        raise NotImplementedError

    async def aset(self, key: str, entry: CachedResponse, ttl: float) -> bool:
        """Store `entry` for `ttl` seconds; False when it was not stored (too big, backend down)."""
        raise NotImplementedError

    def purge(self, key: str, *, prefix: bool = False) -> int:
        """Delete the entries of every project whose key equals `key` (or starts with it); return how many."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (called on shutdown)."""
