"""Waiting for something to happen, instead of sleeping a fixed time and hoping it did.

A test that sleeps and then asserts is slow when the machine is fast and flaky when it is slow; these poll a
condition and fail with a message naming what never happened.
"""

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


Message = str | Callable[[], str] | None  # a callable is asked at the timeout (e.g. for a log to show)


def _timed_out(timeout: float, message: Message, predicate: object, last_error: BaseException | None) -> AssertionError:
    what = (message() if callable(message) else message) or getattr(predicate, "__name__", repr(predicate))
    detail = f" (last error: {last_error!r})" if last_error is not None else ""
    return AssertionError(f"timed out after {timeout}s waiting for: {what}{detail}")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: Message = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` until it returns something truthy and return that; fail the test after `timeout` seconds.

    Exceptions of the types in `ignoring` count as "not yet" (a server still starting refuses connections).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except ignoring as error:
            last_error = error
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, message, predicate, last_error)
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109  # the same signature as wait_until: the deadline is the point
    interval: float = 0.01,
    message: Message = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """`wait_until` for async tests: sleeps on the event loop between tries; `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
        except ignoring as error:
            last_error = error
        else:
            if result:
                return result  # type: ignore[return-value]  # awaited above when it was a coroutine
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, message, predicate, last_error)
        await asyncio.sleep(interval)


def wait_until_serving(url: str, process: "subprocess.Popen[Any] | None" = None, *, timeout: float = 30.0) -> None:
    """Wait until the server at `url` answers `GET /live`; fail with its stderr if `process` exits or never answers.

    On failure the process is killed, so a fixture need not clean up a server that never started.
    """

    def answers_or_exited() -> bool:
        if process is not None and process.poll() is not None:
            return True  # reported below, with what it wrote
        httpx.get(url + "/live", timeout=1)
        return True

    try:
        wait_until(answers_or_exited, timeout=timeout, interval=0.1, ignoring=(httpx.TransportError,),
                   message=f"{url}/live to answer")  # fmt: skip
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server for {url} exited with {process.returncode} before answering")
    except AssertionError as error:
        if process is None:
            raise
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr = process.stderr.read() if process.stderr else b""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        raise AssertionError(f"{error}; its stderr ends with:\n{text[-2000:]}") from None
