"""The lean Django ASGI handler that serves /v1, with no thread hop per request.

It is Django's ASGIHandler with everything that costs a thread hop per request taken out:
- middleware from settings.PROXY_MIDDLEWARE, which must be async-capable (refused otherwise, never adapted);
- no request_started/request_finished signals (their sync receivers run through sync_to_async), and
  response closers are called directly instead of `sync_to_async(response.close)`;
- no ThreadSensitiveContext: the few database calls on this path (limited-token counting, cache misses)
  all go to asgiref's one shared sync thread, where the connection persists between requests;
- no `log_response` thread hop for 4xx/5xx (upstream errors are the upstream's, passed through);
- no URL resolver walk: everything under /v1/ is the proxy view;
- the body is read into memory up to MAX_REQUEST_SIZE, refused with 413 before anything is forwarded.
"""

import asyncio
import io
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import ResolverMatch, set_script_prefix, set_urlconf
from django.utils.module_loading import import_string

from llmproxy import compat

from . import daphne_flow, errors
from .asgi_types import ProxyRequest, Receive, Scope, Send
from .errors import UpstreamInterrupted

logger = logging.getLogger(__name__)


class ProxyASGIHandler(ASGIHandler):
    chain: Callable[[HttpRequest], Awaitable[HttpResponseBase]]

    def load_middleware(self, is_async: bool = True) -> None:
        handler = convert_exception_to_response(compat.inner_get_response(self))
        for path in reversed(settings.PROXY_MIDDLEWARE):
            middleware = import_string(path)
            if not getattr(middleware, "async_capable", False):
                raise ImproperlyConfigured(f"PROXY_MIDDLEWARE: {path} is not async-capable; /v1 allows no thread hop.")
            instance = middleware(handler)
            hooks = ("process_view", "process_exception", "process_template_response")
            if any(hasattr(instance, hook) for hook in hooks):
                raise ImproperlyConfigured(
                    f"PROXY_MIDDLEWARE: {path} uses {'/'.join(hooks)} hooks, unsupported on /v1."
                )
            handler = convert_exception_to_response(instance)
        compat.install_middleware_chain(self, handler)
        # what get_response_async calls (a coroutine function: every middleware in it is async-capable)
        self.chain = cast(Callable[[HttpRequest], Awaitable[HttpResponseBase]], handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        match = getattr(self, "_match", None)
        if match is None:
            from .views import proxy

            match = self._match = ResolverMatch(proxy, (), {}, url_name="proxy", route="v1/<path>")
        request.resolver_match = match
        return match

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_error: errors.ProxyError | None = None
        try:
            body = await self.aread_body(scope, receive)
        except RequestAborted:
            return
        except errors.ProxyError as exc:
            # Too large: the view answers it like any refusal before the token check (a body-less event with
            # X-Proxy-Refused, counted by reason), from a request that keeps none of the body.
            body, body_error = b"", exc
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, io.BytesIO(body))
        if request is None:
            await self.send_response(cast(HttpResponseBase, error_response), send)  # Django's 400
            return
        cast(ProxyRequest, request).proxy_body_error = body_error
        await self.aserve(request, receive, send)

    async def aserve(self, request: HttpRequest, receive: Receive, send: Send) -> None:
        """Serve the request in this task while a watcher listens for the client leaving: then this task is
        cancelled, and with it the view and its upstream call (Django's two-task version, one task lighter)."""
        task = asyncio.current_task()
        assert task is not None  # the server's task for this request
        left: list[bool] = []

        async def watch() -> None:
            if (await receive())["type"] == "http.disconnect":
                left.append(True)
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            finally:
                close_response(response)
        except asyncio.CancelledError:
            if not left:
                raise  # the server is stopping, not the client leaving
            task.uncancel()
        finally:
            watcher.cancel()

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        set_urlconf(settings.ROOT_URLCONF)
        response: HttpResponseBase = await self.chain(request)
        compat.resource_closers(response).append(request.close)
        return response

    async def aread_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole request body, refusing more than MAX_REQUEST_SIZE before reading it when announced."""
        limit = settings.MAX_REQUEST_SIZE
        if content_length(scope) > limit:
            raise errors.request_too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise errors.request_too_large()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        store = compat.header_store(response.headers)
        headers = [(name.encode("latin1"), value.encode("latin1")) for name, value in store.values()]
        headers.extend(getattr(response, "proxy_raw_headers", ()))  # repeated upstream headers (Set-Cookie)
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        if not response.streaming:
            await send({"type": "http.response.body", "body": cast(HttpResponse, response).content})
            return
        body_send, release = daphne_flow.paced(send)  # Daphne's send never waits for a slow client
        try:
            # StreamingHttpResponse.__aiter__ is an async generator (typed as a plain iterator)
            body = cast(AsyncGenerator[bytes], aiter(cast(StreamingHttpResponse, response)))
            async with aclosing(body) as content:
                if "content-length" in store and "text/event-stream" not in store.get("content-type", ("", ""))[1]:
                    await self._send_fixed_length(content, body_send)
                    return
                async for chunk in content:
                    if chunk:
                        await body_send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamInterrupted as exc:
            logger.warning("aborting the client connection: %s", exc)
            if not abort_daphne_connection(send):
                raise  # uvicorn and granian close the connection when the application raises
            return
        finally:
            release()
        await send({"type": "http.response.body"})

    @staticmethod
    async def _send_fixed_length(content: AsyncIterator[bytes], send: Send) -> None:
        """A body of known length: hold each chunk until the next arrives, so the last one ends the response
        (one ASGI message fewer; such bodies are complete answers, not streams, so nothing waits longer)."""
        pending = b""
        async for chunk in content:
            if pending:
                await send({"type": "http.response.body", "body": pending, "more_body": True})
            pending = chunk
        await send({"type": "http.response.body", "body": pending})


def content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def close_response(response: HttpResponseBase) -> None:
    """HttpResponse.close() without the request_finished signal (whose receivers are for sync requests)."""
    closers = compat.resource_closers(response)
    for closer in closers:
        try:
            closer()
        except Exception:
            logger.exception("closing the response failed")
    closers.clear()
    response.closed = True


def abort_daphne_connection(send: Send) -> bool:
    """Daphne has no way for an application to abort a started response, and an exception at that point
    breaks its housekeeping loop; so close the protocol's transport directly. Returns False for other servers."""
    transport = getattr(compat.daphne_protocol(send), "transport", None)
    if transport is None:
        return False
    transport.abortConnection()
    return True
