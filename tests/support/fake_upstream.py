"""A scriptable fake OpenAI upstream on a real socket (aiohttp in a background thread).

Default routes answer like OpenAI: `POST /v1/chat/completions` (JSON, or SSE when the body has
`"stream": true`), `GET /v1/models`. Tests replace a route with `reply`, `sse` or `route`, and
read what the proxy sent in `requests`.
"""

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CHAT_COMPLETION = {
    "id": "chatcmpl-fake",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello from upstream"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}
MODELS = {
    "object": "list",
    "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "system"}],
}


def sse_chunks(words=("Hello", " from", " upstream")) -> list[str]:
    """OpenAI chat.completion.chunk events for `words`, the last one with usage, then [DONE]."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini"}
    events = []
    for i, word in enumerate(words):
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": len(words), "total_tokens": 9 + len(words)},
        }
    )
    return [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.disconnected = threading.Event()  # set when a client went away mid-response

    # --- scripting -------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def reply(
        self,
        path: str,
        *,
        method: str = "POST",
        status: int = 200,
        json_body=None,
        body: bytes = b"",
        headers: dict | None = None,
        delay: float = 0.0,
    ) -> None:
        async def handler(request: web.Request) -> web.Response:
            if delay:
                await asyncio.sleep(delay)
            data = json.dumps(json_body).encode() if json_body is not None else body
            hdrs = {"Content-Type": "application/json"} if json_body is not None else {}
            hdrs.update(headers or {})
            return web.Response(status=status, body=data, headers=hdrs)

        self.route(method, path, handler)

    def sse(
        self,
        path: str,
        events: list[str],
        *,
        delays: list[float] | None = None,
        method: str = "POST",
        headers: dict | None = None,
    ) -> None:
        """Stream `events` as text/event-stream, sleeping delays[i] before event i."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._stream(request, events, delays or [0.0] * len(events), headers)

        self.route(method, path, handler)

    def reset(self) -> None:
        self.requests.clear()
        self._routes.clear()
        self.disconnected.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- serving -----------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, request.query_string, dict(request.headers), body)
        )
        handler = self._routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request)
        return await self._default(request, body)

    async def _default(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path == "/v1/models" and request.method == "GET":
            return web.json_response(MODELS)
        if request.path == "/v1/chat/completions" and request.method == "POST":
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return web.json_response({"error": {"message": "bad json"}}, status=400)
            if isinstance(payload, dict) and payload.get("stream"):
                return await self._stream(request, sse_chunks(), [0.0] * 5, None)
            return web.json_response(CHAT_COMPLETION)
        return web.json_response({"error": {"message": f"no route {request.method} {request.path}"}}, status=404)

    async def _stream(self, request, events, delays, headers) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **(headers or {})})
        await response.prepare(request)
        try:
            for delay, event in zip(delays, events, strict=False):
                if delay:
                    await asyncio.sleep(delay)
                await response.write(event.encode())
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    def start(self) -> "FakeUpstream":
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            # Raw request bytes, as the proxy sent them: a body whose Content-Encoding lies is then the
            # upstream's problem to answer, not a crash of this fake's request parser.
            self._runner = web.AppRunner(app, handler_cancellation=True, auto_decompress=False)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="fake-upstream")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
