"""Flow control for response bodies under Daphne (its and Twisted's internals are reached through llmproxy.compat).

Daphne's `send` hands every body message to Twisted's transport at once and returns: it never waits for the
client. A fast upstream relayed to a slower client would pile up in the web process (measured: peak RSS
+50 MB for a 50 MB answer, and without bound for a stream that never ends). Twisted does tell a registered
push producer when the socket's send buffer is full and when it has drained (`IConsumer.registerProducer`
on Daphne's request, a `twisted.web.http.Request`); the relay loop waits on that before each body message.
uvicorn's `send` already waits for the socket to drain, so under any other server `paced` changes nothing.
tests/proxy/test_hostile_upstream.py fails loudly if an upgrade of either breaks this.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from llmproxy import compat

from .asgi_types import Message, Send

logger = logging.getLogger(__name__)


class _Producer:
    """A Twisted push producer that only records whether the transport wants more data."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's interface
        self.ready.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self.ready.set()

    def stopProducing(self) -> None:  # noqa: N802 - the connection is gone: let the sender find out
        self.ready.set()


def _noop() -> None:
    return None


def paced(send: Send) -> tuple[Send, Callable[[], None]]:
    """(send for body messages that waits while Daphne's socket buffer is full, release callable).

    The last body message releases by itself; call `release` when the body ends otherwise (errors)."""
    request = _daphne_request(send)
    if request is None:
        return send, _noop
    channel, producer = request.channel, _Producer()
    try:
        request.registerProducer(producer, True)
    except (RuntimeError, ValueError, AttributeError):  # another producer, or a connection already gone
        logger.debug("response flow control unavailable for this request", exc_info=True)
        return send, _noop
    if compat.transport_waiting(channel):  # the buffer was already full before we registered
        producer.pauseProducing()

    def release() -> None:
        # Before the last message: Twisted finishing a request with a producer still registered logs an error.
        if compat.channel_producer(channel) is producer:
            channel.unregisterProducer()
        if getattr(request, "producer", None) is producer:
            request.producer = None

    async def paced_send(message: Message) -> None:
        if not producer.ready.is_set():
            await producer.ready.wait()
        if not message.get("more_body", False):
            release()
        await send(message)

    return paced_send, release


def _daphne_request(send: Send) -> Any | None:
    """Daphne's protocol behind `send` is its request object (a twisted.web Request), if its channel is open."""
    request = compat.daphne_protocol(send)
    if request is None or getattr(request, "channel", None) is None:
        return None
    return request
