"""The ProxyRuntime: one owner of the proxy's per-process state, started and stopped in a fixed order."""

import asyncio

from llmproxy import lifecycle
from llmproxy.proxy import state
from llmproxy.proxy.runtime import ProxyRuntime

ORDER = [
    "usage.astart",
    "watch.astart",
    "invalidation.astart",
    "other apps' start-up hooks",
    "other apps' shutdown hooks",
    "invalidation.astop",
    "watch.astop",
    "usage.astop",
    "cache.aclose",
    "upstream.aclose",
    "db.aclose",
]


def recording(runtime: ProxyRuntime, monkeypatch, calls: list[str], failing: str = ""):
    def recorder(name: str):
        async def record() -> None:
            calls.append(name)
            if name == failing:
                raise RuntimeError(f"{name} failed")

        return record

    for part in ("usage", "watch", "invalidation", "cache", "upstream", "db"):
        for method in ("astart", "astop", "aclose"):
            if hasattr(getattr(runtime, part), method):
                monkeypatch.setattr(getattr(runtime, part), method, recorder(f"{part}.{method}"))
    monkeypatch.setattr(lifecycle, "run_startup", recorder("other apps' start-up hooks"))
    monkeypatch.setattr(lifecycle, "run_shutdown", recorder("other apps' shutdown hooks"))


def test_the_runtime_starts_its_parts_then_other_apps_hooks_and_stops_in_reverse(monkeypatch):
    runtime, calls = ProxyRuntime(), []
    recording(runtime, monkeypatch, calls)

    async def run() -> None:
        await runtime.astart()
        await runtime.astop()

    asyncio.run(run())
    assert calls == ORDER


def test_a_part_that_fails_to_stop_does_not_keep_the_others_running(monkeypatch):
    runtime, calls = ProxyRuntime(), []
    recording(runtime, monkeypatch, calls, failing="usage.astop")
    asyncio.run(runtime.astop())
    assert calls == ORDER[4:]


def test_each_runtime_has_parts_of_its_own():
    first, second = ProxyRuntime(), ProxyRuntime()
    assert first.tokens is not second.tokens and first.breaker is not second.breaker
    first.breaker.record("project", 502)
    assert (first.breaker.tracked(), second.breaker.tracked()) == (1, 0)


def test_django_setup_installed_a_runtime_that_install_replaces():
    installed = state.runtime()
    fresh = ProxyRuntime()
    assert state.install(fresh) is installed
    try:
        assert state.runtime() is fresh
    finally:
        state.install(installed)
