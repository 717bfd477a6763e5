"""Start-up and shutdown hooks that apps other than the proxy add to a web process.

The proxy's own parts are started and stopped by its ProxyRuntime (llmproxy/proxy/runtime.py) in a fixed
order; other apps with background work of a web process (today instrumentation: the event bus publisher
and the runtime metrics) register a hook here, the only way to register one, and only from
`ProxyConfig.ready()` (llmproxy/proxy/apps.py), so the order is written in one place. The runtime runs the start-up
hooks after its own parts have started, in registration order, and the shutdown hooks, in reverse order,
before its own parts stop.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Hook = Callable[[], Awaitable[None]]

_startup: list[Hook] = []
_shutdown: list[Hook] = []


def on_startup(hook: Hook) -> Hook:
    if hook not in _startup:
        _startup.append(hook)
    return hook


def on_shutdown(hook: Hook) -> Hook:
    if hook not in _shutdown:
        _shutdown.append(hook)
    return hook


async def run_startup() -> None:
    for hook in list(_startup):
        await hook()


async def run_shutdown() -> None:
    for hook in reversed(_shutdown):
        await hook()


async def acancel(task: "asyncio.Task[Any] | None") -> None:
    """Cancel a background task and wait until it has stopped (a shutdown step's usual first step)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
