"""The project's real ASGI application served by uvicorn on a real socket, in a background thread.

Used by the `proxy_server` fixture (tests/conftest.py). The server runs the ASGI lifespan, so the
start-up and shutdown hooks of `llmproxy.lifecycle` run exactly as in production; it shares the test
process's settings and test database.
"""

import asyncio
import socket
import threading

import uvicorn

from tests.support.waiting import wait_until


class LiveASGIServer:
    def __init__(self, app) -> None:
        self.app = app
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LiveASGIServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="auto",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            server_header=False,
            date_header=False,
            proxy_headers=False,  # like Daphne's default: the peer is the socket's, X-Forwarded-For is not trusted
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            try:
                self.loop.run_until_complete(self._server.serve(sockets=[sock]))
            finally:
                self.loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name="asgi-live-server")
        self._thread.start()
        started.wait(10)
        # Until uvicorn ran the lifespan start-up and listens (or its thread died: reported below).
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=10, message="uvicorn to start")
        if not self._server.started:
            raise RuntimeError("the ASGI test server did not start (see the log above)")
        return self

    def run_in_loop(self, coro, timeout: float = 10):
        """Run a coroutine on the server's event loop (e.g. to inspect per-loop state) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
