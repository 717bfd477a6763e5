"""Local error answers of /v1, exactly as the reference writes them (status, message and code).

Bodies are JSON with the fields in the order error, description, code (empty ones left out), a trailing
newline as Go's json.Encoder writes, and `Content-Type: application/json`.
"""

import json

from django.http import HttpResponse


class UpstreamInterrupted(Exception):
    """The upstream body broke off after the response started; the client connection must be aborted."""


class ProxyError(Exception):
    """A pipeline step refused the request; the view turns it into the catalogue's response."""

    def __init__(self, status: int, error: str, code: str = "", description: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


def body(error: str, code: str = "", description: str = "") -> bytes:
    payload = {"error": error}
    if description:
        payload["description"] = description
    if code:
        payload["code"] = code
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    # Go's encoder escapes HTML-significant characters; clients comparing bodies byte for byte see the same.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


def response(exc: ProxyError) -> HttpResponse:
    return HttpResponse(body(exc.error, exc.code, exc.description), status=exc.status, content_type="application/json")


def method_not_allowed() -> ProxyError:
    return ProxyError(405, "Method not allowed", "method_not_allowed")


def endpoint_not_found() -> ProxyError:
    return ProxyError(404, "Endpoint not found", "endpoint_not_found")


def param_not_allowed(message: str) -> ProxyError:
    return ProxyError(400, message, "param_not_allowed")


def origin_required() -> ProxyError:
    return ProxyError(400, "Origin header required", "origin_required")


def origin_not_allowed() -> ProxyError:
    return ProxyError(403, "Origin not allowed", "origin_not_allowed")


def invalid_token(description: str) -> ProxyError:
    return ProxyError(401, "Invalid token", "invalid_token", description)


def token_not_found() -> ProxyError:
    return ProxyError(401, "Token not found", "token_not_found")


def token_inactive() -> ProxyError:
    return ProxyError(401, "Token is inactive", "token_inactive")


def token_expired() -> ProxyError:
    return ProxyError(401, "Token has expired", "token_expired")


def rate_limited() -> ProxyError:
    return ProxyError(429, "Rate limit exceeded", "rate_limit_exceeded")


def project_inactive() -> ProxyError:
    return ProxyError(403, "Project is inactive", "project_inactive")


def service_unavailable() -> ProxyError:
    return ProxyError(503, "Service temporarily unavailable", "service_unavailable")


def upstream_auth_error() -> ProxyError:
    return ProxyError(503, "Upstream authentication error", "upstream_auth_error", "failed to load upstream API key")


def proxy_error() -> ProxyError:
    return ProxyError(502, "Proxy error")


def timeout() -> ProxyError:
    return ProxyError(504, "Request timeout", "timeout")


def canceled() -> ProxyError:
    return ProxyError(408, "Request canceled", "canceled")


def circuit_open() -> ProxyError:
    return ProxyError(503, "Upstream unavailable (circuit breaker open)")


def request_too_large() -> ProxyError:
    return ProxyError(413, "Request body too large", "request_too_large")


def invalid_request_body(message: str) -> ProxyError:
    return ProxyError(400, message, "invalid_request_body")
