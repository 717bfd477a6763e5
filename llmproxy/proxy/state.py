"""Per-process proxy state that tests reset between servers. Modules register a reset callable here."""

from collections.abc import Callable

_resetters: list[Callable[[], None]] = []


def on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    if fn not in _resetters:
        _resetters.append(fn)
    return fn


def reset() -> None:
    for fn in list(_resetters):
        fn()
