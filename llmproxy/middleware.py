"""Request ids for every non-proxy response (management API, admin, health, metrics)."""

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class RequestIdMiddleware:
    """Echo the client's X-Request-ID / X-Correlation-ID or generate them, on request and response, as the
    reference's request-id middleware does for every route."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        self._tag(request)
        return self._finish(request, self.get_response(request))

    async def __acall__(self, request):
        self._tag(request)
        return self._finish(request, await self.get_response(request))

    @staticmethod
    def _tag(request) -> None:
        request.request_id = request.META.get("HTTP_X_REQUEST_ID") or str(uuid.uuid4())
        request.correlation_id = request.META.get("HTTP_X_CORRELATION_ID") or str(uuid.uuid4())

    @staticmethod
    def _finish(request, response):
        response["X-Request-ID"] = request.request_id
        response["X-Correlation-ID"] = request.correlation_id
        return response
