"""Start-up and shutdown hooks of a web process.

Parts with background work (the event publisher, batched usage counters, cache-invalidation
listener) register here; the ASGI entry point runs the hooks once on the running loop at start
and again, in reverse order, when the process shuts down (SIGTERM included).
"""

import asyncio
from collections.abc import Awaitable, Callable

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


async def acancel(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has stopped (a shutdown hook's usual first step)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
