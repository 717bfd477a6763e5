"""Cross-process invalidation of the proxy's in-process caches (tokens, project keys and status), contract 6.

Services call `token_changed` / `project_changed` after a change commits. This process's caches are
cleared at once; with Redis configured (settings.REDIS_CONFIGURED) the change is also published on a
pub/sub channel that a listener task in every web process follows, so all of them clear within a second.
Redis being down never breaks serving: publishing failures are logged, and while a process's listener is
disconnected its cache entries are trusted for one second only (see auth.py), then fully cleared on
reconnect since messages may have been missed.
"""

import asyncio
import json
import logging

import redis
import redis.asyncio as aioredis
from django.conf import settings

from llmproxy import lifecycle

from . import state

logger = logging.getLogger(__name__)
CHANNEL = "llm-proxy:invalidate"

_connected = False  # this process's listener is subscribed
_publisher: tuple[str, redis.Redis] | None = None
_task: asyncio.Task | None = None


def token_changed(token_hash: str) -> None:
    """A token was revoked, reactivated or had its limits changed."""
    from . import auth

    auth.forget_token(token_hash)
    _publish({"token": token_hash})


def project_changed(project_id: str) -> None:
    """A project was (de)activated or its upstream key changed."""
    from . import auth

    auth.forget_project(str(project_id))
    _publish({"project": str(project_id)})


def is_trusted() -> bool:
    """Whether cached entries can live their full TTL: no other process to hear from, or listening to them."""
    return _connected or not settings.REDIS_CONFIGURED


def _publish(message: dict) -> None:
    global _publisher
    if not settings.REDIS_CONFIGURED:
        return
    try:
        if _publisher is None or _publisher[0] != settings.REDIS_URL:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
            _publisher = (settings.REDIS_URL, client)
        _publisher[1].publish(CHANNEL, json.dumps(message))
    except redis.RedisError as exc:
        logger.warning("cache invalidation not published (other web processes catch up within 1 s): %s", exc)


def _apply(raw: bytes) -> None:
    from . import auth

    try:
        message = json.loads(raw)
    except ValueError:
        return
    if "token" in message:
        auth.forget_token(message["token"])
    if "project" in message:
        auth.forget_project(message["project"])


async def _listen() -> None:
    global _connected
    from . import auth

    delay = 0.2
    while True:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, health_check_interval=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            auth.forget_all()  # anything published while we were not listening is lost
            _connected, delay = True, 0.2
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "message":
                    _apply(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _connected:
                logger.warning("cache invalidation listener lost Redis (%s); retrying", exc)
            _connected = False
        finally:
            _connected = False
            await _close(pubsub, client)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def _close(pubsub, client) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception:
        pass


async def astart() -> None:
    global _task
    if settings.REDIS_CONFIGURED:
        _task = asyncio.get_running_loop().create_task(_listen())


async def astop() -> None:
    global _task
    task, _task = _task, None
    await lifecycle.acancel(task)


def register() -> None:
    lifecycle.on_startup(astart)
    lifecycle.on_shutdown(astop)


@state.on_reset
def _reset() -> None:
    global _publisher
    _publisher = None
