"""The lean /v1 handler accepts only middleware that runs on the event loop."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.deprecation import MiddlewareMixin

from llmproxy.proxy.handler import ProxyASGIHandler


class SyncOnlyMiddleware(MiddlewareMixin):
    sync_capable = True
    async_capable = False


class ViewHookMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    async def __call__(self, request):
        return await self.get_response(request)

    def process_view(self, request, view, args, kwargs):
        return None


@pytest.mark.parametrize("middleware", ["SyncOnlyMiddleware", "ViewHookMiddleware"])
def test_middleware_that_would_hop_threads_is_refused_on_v1(settings, middleware):
    settings.PROXY_MIDDLEWARE = [f"tests.proxy.test_handler.{middleware}"]
    with pytest.raises(ImproperlyConfigured, match="PROXY_MIDDLEWARE"):
        ProxyASGIHandler()


def test_the_configured_proxy_middleware_loads_without_adaptation(settings):
    handler = ProxyASGIHandler()
    assert handler._view_middleware == [] and handler._exception_middleware == []
