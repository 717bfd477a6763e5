"""Where the process's ProxyRuntime lives: the one owner of the proxy's per-process state.

`ProxyConfig.ready()` installs a `ProxyRuntime` (runtime.py) here when Django starts, in every process (a
management command's token revocation uses its invalidation channel too); the ASGI application starts it.
Tests install a fresh one per server. This module imports nothing of the proxy, so that any module can read
the runtime without an import cycle.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import ProxyRuntime

_runtime: "ProxyRuntime | None" = None


def runtime() -> "ProxyRuntime":
    """The process's runtime (installed by ProxyConfig.ready())."""
    current = _runtime
    if current is None:
        raise RuntimeError("no ProxyRuntime installed: Django is not set up (django.setup() installs it)")
    return current


def install(new: "ProxyRuntime") -> "ProxyRuntime":
    """Make `new` the process's runtime and return the one it replaces (not stopped: its owner stops it)."""
    global _runtime
    old = _runtime
    _runtime = new
    return old if old is not None else new
