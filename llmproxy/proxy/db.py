"""The database thread of /v1: asgiref's one shared sync thread, where the proxy's few queries run.

The token check's lookups, the guarded quota UPDATE of limited tokens and the usage batcher's writes all
go to the same long-lived thread (sync_to_async with its default thread_sensitive=True), so its database
connection persists between requests instead of being opened per request.
"""

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")


def db_hygiene() -> None:
    """What request_started/finished do for Django's requests (/v1 has neither): drop a connection that
    failed or outlived CONN_MAX_AGE. A healthy SQLite connection is kept: this thread is long-lived and
    reopening a WAL database costs a checkpoint each time."""
    for conn in connections.all(initialized_only=True):
        if conn.vendor != "sqlite" or conn.errors_occurred:
            conn.close_if_unusable_or_obsolete()


def _in_db_thread(fn: Callable[..., T], *args: object) -> T:
    db_hygiene()
    return fn(*args)


class DbThread:
    """Runs a function in the shared database thread, with connection hygiene first."""

    def __init__(self) -> None:
        self._run = sync_to_async(_in_db_thread)  # asgiref's one shared thread: its connection persists

    async def arun(self, fn: Callable[..., T], *args: object) -> T:
        result: T = await self._run(fn, *args)
        return result

    async def aclose(self) -> None:
        """Close the thread's connections (last step of shutdown: the usage batcher writes through it)."""
        await sync_to_async(connections.close_all)()
