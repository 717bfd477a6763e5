"""Cross-process invalidation of the proxy's in-process caches (tokens, project keys and status): a change
committed by any process reaches every web process within a second.

Services call `token_changed` / `project_changed` after a change commits. This process's caches are
cleared at once, and the shared generation is bumped (generation.py: a database row, and a Redis key with
Redis configured) that every web process's `GenerationWatch` reads twice a second: that alone brings the
change everywhere within a second, with or without Redis, even when a pub/sub message is lost. With Redis
configured the change is also published on a pub/sub channel that the `InvalidationListener` of every web
process follows: the fast path. Redis being down never breaks serving: publishing failures are logged, a
listener clears everything when it reconnects, and while the generation cannot be read cached entries are
trusted for one second only (auth.Freshness).
"""

import asyncio
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from llmproxy.lifecycle import acancel

from . import generation, state
from .auth import Freshness, ProjectKeyCache, TokenCache

logger = logging.getLogger(__name__)
CHANNEL = generation.CHANNEL


def token_changed(token_hash: str) -> None:
    """A token was revoked, reactivated or had its limits changed (called by services after commit)."""
    state.runtime().invalidation.token_changed(token_hash)


def project_changed(project_id: str) -> None:
    """A project was (de)activated or its upstream key changed (called by services after commit)."""
    state.runtime().invalidation.project_changed(str(project_id))


class InvalidationListener:
    """Clears this process's caches on a change, publishes it, and follows other processes' changes."""

    def __init__(self, tokens: TokenCache, projects: ProjectKeyCache, freshness: Freshness) -> None:
        self._tokens = tokens
        self._projects = projects
        self._freshness = freshness
        self._task: asyncio.Task[None] | None = None

    def token_changed(self, token_hash: str) -> None:
        self._tokens.forget(token_hash)
        self.publish({"token": token_hash})

    def project_changed(self, project_id: str) -> None:
        self._projects.forget(project_id)
        self.publish({"project": project_id})

    def is_trusted(self) -> bool:
        return self._freshness.trusted()

    def publish(self, message: dict[str, str]) -> None:
        """Tell the other processes: bump the shared generation, and publish `message` with Redis."""
        generation.announce(json.dumps(message).encode())

    async def astart(self) -> None:
        if settings.REDIS_CONFIGURED:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def astop(self) -> None:
        task, self._task = self._task, None
        await acancel(task)

    def _apply(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if "token" in message:
            self._tokens.forget(message["token"])
        if "project" in message:
            self._projects.forget(message["project"])

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            # Not llmproxy.redis: a subscription waits on its socket for as long as nothing is published, so it
            # has no command timeout; redis-py's health checks (PING every 5 s) notice a dead connection instead.
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, health_check_interval=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._tokens.clear()  # anything published while we were not listening is lost
                self._projects.clear()
                self._freshness.listening, delay = True, 0.2
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._freshness.listening:
                    logger.warning("cache invalidation listener lost Redis (%s); retrying", exc)
            finally:
                self._freshness.listening = False
                await _close(pubsub, client)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _close(pubsub: Any, client: Any) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception:
        pass
