"""The client's address, believing `X-Forwarded-For` / `X-Real-IP` only from a trusted proxy.

Any client can send those headers, so they are read only when the peer (the TCP address the server saw) is
in TRUSTED_PROXIES. Behind a chain of proxies the client is the rightmost X-Forwarded-For entry that is not
itself a trusted proxy: entries to its left were written by the client and prove nothing. The reference
takes the first entry from anyone (docs/compatibility.md lists the difference).

One helper for everything that keys on the client: the audit log, the management API's failed-auth
throttle, and rate limits. It accepts a Django request, its `META` dict, or an ASGI scope.
"""

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(source: Any) -> str:
    """The client address of a Django request, its META dict, or an ASGI scope ("" when unknown)."""
    peer, forwarded_for, real_ip = _addresses(source)
    if not peer or not _is_trusted(peer):
        return peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _is_trusted(entry):
            return entry
    # Every forwarded hop is a trusted proxy (or there is none): the leftmost one, then X-Real-IP, then the peer.
    hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    return hops[0] if hops else (real_ip.strip() or peer)


def _addresses(source: Any) -> tuple[str, str, str]:
    """(peer, X-Forwarded-For, X-Real-IP) of a request, a META dict or an ASGI scope."""
    if isinstance(source, dict) and "type" in source and "headers" in source:
        client = source.get("client") or ("", 0)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in source["headers"]}
        return str(client[0] or ""), headers.get("x-forwarded-for", ""), headers.get("x-real-ip", "")
    meta = source if isinstance(source, dict) else source.META
    return meta.get("REMOTE_ADDR", "") or "", meta.get("HTTP_X_FORWARDED_FOR", ""), meta.get("HTTP_X_REAL_IP", "")


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a name, a port or garbage: never a trusted proxy
    return any(ip in network for network in trusted_networks(tuple(settings.TRUSTED_PROXIES)))


@lru_cache(maxsize=8)
def trusted_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES parsed (settings.py has already refused a bad entry)."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
