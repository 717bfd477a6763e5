"""The project's ASGI application: /v1 to the lean proxy handler, everything else to Django's standard one.

It also starts and stops the process's ProxyRuntime (runtime.py; its start runs the other apps' lifecycle
hooks too), whatever server runs it:
- ASGI lifespan (uvicorn, granian): started on `lifespan.startup`, stopped on `lifespan.shutdown` (those
  servers already finish in-flight requests on SIGTERM before the lifespan shutdown);
- Daphne, which has no lifespan and drops in-flight requests on SIGTERM: once its reactor runs, the start is
  scheduled and SIGTERM/SIGINT are taken over for a graceful drain (stop listening, let in-flight requests
  and streams finish up to SHUTDOWN_TIMEOUT, stop the runtime, stop the reactor, exit 0);
- any other server: started before the first request.
"""

import asyncio
import logging
import signal
import sys
import threading
import time
import uuid
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from llmproxy import compat

from . import errors, state
from .asgi_types import Message, Receive, Scope, Send
from .handler import ProxyASGIHandler, content_length

logger = logging.getLogger(__name__)


class Application:
    def __init__(self) -> None:
        self.proxy = ProxyASGIHandler()
        self.django = ASGIStaticFilesHandler(get_asgi_application())
        self.in_flight = 0
        self.draining = False
        self._idle: asyncio.Event | None = None  # set when in_flight drops to 0 while draining
        self._started: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.lifespan(receive, send)
            return
        started = self._started.get(asyncio.get_running_loop())
        if started is None or not started.done():
            await self.astartup()
        if kind != "http":
            await self.django(scope, receive, send)  # Django refuses websockets with a clear error
            return
        self.in_flight += 1
        try:
            if scope["path"].startswith("/v1/"):
                await self.proxy(scope, receive, send)
            elif content_length(scope) > settings.MAX_REQUEST_SIZE:
                await send_too_large(scope, send)
            else:
                await self.django(scope, bounded_receive(scope, receive, send), send)
        finally:
            self.in_flight -= 1
            if self._idle is not None and not self.in_flight:
                self._idle.set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def astartup(self) -> None:
        """Start the runtime once per event loop; concurrent first requests wait for the same start."""
        try:
            await asyncio.shield(self._start_task())
        except Exception:
            logger.exception("starting the proxy runtime failed; serving anyway")

    async def ashutdown(self, seconds: float | None = None) -> None:
        self._started.pop(asyncio.get_running_loop(), None)
        try:
            await asyncio.wait_for(state.runtime().astop(), seconds or settings.SHUTDOWN_TIMEOUT)
        except Exception:
            logger.exception("stopping the proxy runtime failed or timed out")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.shield(self._start_task())
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": f"start-up failed: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.ashutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_task(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        if loop not in self._started:
            self._started[loop] = loop.create_task(state.runtime().astart())
        return self._started[loop]

    async def adrain(self, seconds: float) -> bool:
        """Wait until no request is in flight (streams included). False if `seconds` ran out first."""
        self.draining = True
        self._idle = asyncio.Event()
        if self.in_flight:
            try:
                await asyncio.wait_for(self._idle.wait(), seconds)
            except TimeoutError:
                return False
        return True


def bounded_receive(scope: Scope, receive: Receive, send: Send) -> Receive:
    """`receive` for Django that answers 413 once the body passes MAX_REQUEST_SIZE, then tells Django the
    client left.

    Django's ASGIHandler.read_body copies the whole body into a SpooledTemporaryFile before it creates the
    request, with no limit, so a chunked body (no Content-Length to refuse up front) would be spooled in full.
    Counting here keeps what Django holds at the limit plus one chunk, and Django's file still rolls over to
    disk past FILE_UPLOAD_MAX_MEMORY_SIZE (reading the body here and replaying it would hold all of it in
    memory, twice). On `http.disconnect` read_body raises RequestAborted, which Django's handle() takes as a
    client gone: it returns without a response of its own, after ours was sent.
    """
    limit, received = settings.MAX_REQUEST_SIZE, 0

    async def areceive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request" and received <= limit:
            received += len(message.get("body", b""))
            if received > limit:
                await send_too_large(scope, send)
                return {"type": "http.disconnect"}
        return message

    return areceive


async def send_too_large(scope: Scope, send: Send) -> None:
    """413 for /manage and the rest before Django reads (all of) the body; the proxy handler does its own.

    `Connection: close`: the rest of the body is not wanted, and the server closes the connection instead
    of reading and discarding it.
    """
    request_id = dict(scope.get("headers", ())).get(b"x-request-id") or str(uuid.uuid4()).encode()
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    exc = errors.request_too_large()
    await send({"type": "http.response.body", "body": errors.body(exc.error, exc.code)})


# --- Daphne ----------------------------------------------------------------------------------------


def install_daphne_hooks(app: Application) -> None:
    """Under Daphne (the Twisted asyncio reactor), start the runtime when the reactor starts; drain on SIGTERM.

    `callWhenRunning` fires after Twisted installed its own signal handlers, so ours replace them. Under
    any other server the reactor never runs and nothing here happens.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or reactor.running:
        return
    reactor.callWhenRunning(_on_reactor_running, app, reactor)


def _on_reactor_running(app: Application, reactor: Any) -> None:
    loop = asyncio.get_event_loop()
    stopping: list[asyncio.Task[None] | None] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping:  # a second signal: stop now
            loop.call_soon_threadsafe(reactor.stop)
            return
        logger.warning("received signal %s: draining in-flight requests before exit", signum)
        stopping.append(None)
        loop.call_soon_threadsafe(lambda: stopping.append(loop.create_task(_adrain_and_stop(app, reactor))))

    if threading.current_thread() is threading.main_thread():  # runserver's reloader runs Daphne in a thread
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    app._started[loop] = loop.create_task(state.runtime().astart())


async def _adrain_and_stop(app: Application, reactor: Any) -> None:
    for port in compat.listening_ports(reactor):
        port.stopListening()
    # One SHUTDOWN_TIMEOUT for everything: in-flight requests first, a few seconds kept for the hooks.
    total = settings.SHUTDOWN_TIMEOUT
    started = time.monotonic()
    if not await app.adrain(max(total - 5, total / 2)):
        logger.warning("%d request(s) still in flight at the shutdown deadline; stopping anyway", app.in_flight)
    await app.ashutdown(max(total - (time.monotonic() - started), 1.0))
    reactor.stop()
