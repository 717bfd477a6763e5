"""CORS on /v1 as the reference does it: a fixed preflight answer, and an echo of the request's
Origin (never `*`) on every other response, local errors included."""

from django.http import HttpResponse, HttpResponseBase

from . import errors
from .providers import Provider

EXPOSE_HEADERS = "X-Request-ID, X-Proxy-ID, X-LLM-Proxy-Remote-Duration, X-LLM-Proxy-Remote-Duration-Ms"
PREFLIGHT_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
PREFLIGHT_HEADERS = "Authorization, Content-Type, X-Requested-With"


def preflight(origin: str, requested_headers: str) -> HttpResponse:
    """204 for OPTIONS; CORS headers only when the request had an Origin (no authentication involved)."""
    response = HttpResponse(status=204)
    del response["Content-Type"]
    if origin:
        response["Access-Control-Allow-Origin"] = "*"
        response["Access-Control-Allow-Methods"] = PREFLIGHT_METHODS
        response["Access-Control-Allow-Headers"] = requested_headers or PREFLIGHT_HEADERS
        response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Access-Control-Max-Age"] = "86400"
    return response


def echo(response: HttpResponseBase, origin: str) -> None:
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    vary = response.get("Vary")
    response["Vary"] = f"{vary}, Origin" if vary else "Origin"


def check_origin(provider: Provider, origin: str) -> None:
    """The YAML's `required_headers: [origin]` and `allowed_origins` (exact, case-sensitive match)."""
    if not origin:
        if provider.origin_required:
            raise errors.origin_required()
        return
    if provider.allowed_origins and origin not in provider.allowed_origins:
        raise errors.origin_not_allowed()
