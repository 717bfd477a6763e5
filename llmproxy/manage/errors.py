"""Errors of the management API: every answer is `{"error": "..."}` as `application/json`, in the reference's
wording (the reference sends the same text as text/plain). This is where a service error's kind becomes
an HTTP status."""

import json
import logging

from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from llmproxy import services

logger = logging.getLogger(__name__)

STATUS_BY_KIND = {
    services.INVALID: 400,
    services.FORBIDDEN: 403,
    services.NOT_FOUND: 404,
    services.CONFLICT: 409,  # the reference answers 500 for a duplicate name; 409 says what to fix
}


def error(message: str, status: int, /, **extra) -> HttpResponse:
    """A JSON error response `{"error": message, **extra}`, byte-compatible with the reference's bodies."""
    body = json.dumps({"error": message, **extra}, separators=(",", ":"), ensure_ascii=False) + "\n"
    return HttpResponse(body, status=status, content_type="application/json")


class APIError(exceptions.APIException):
    """An error answered as `error(message, status, **extra)`.

    `audit` holds the details of the failure audit event; None means the failure is not audited
    (the reference audits some failures only).
    """

    def __init__(self, message: str, status: int = 400, *, audit: dict | None = None, **extra) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status
        self.audit = audit
        self.extra = extra
        self.headers: dict[str, str] = {}  # response headers, e.g. Retry-After on a 429

    @property
    def audit_details(self) -> dict | None:
        """What `audit.services.audited` records as the failure event (None: nothing)."""
        return self.audit


def invalid_body(problem: str, *, message: str = "invalid request body") -> APIError:
    """400 with the reference's message and a description naming what was wrong."""
    return APIError(message, 400, audit={"validation_error": message, "error": problem}, description=problem)


def from_service_error(exc: services.ServiceError) -> APIError:
    """The API's answer to a service error: the status its kind maps to, and its code when it has one."""
    extra = {"code": exc.code} if exc.code else {}
    return APIError(exc.message, STATUS_BY_KIND[exc.kind], audit=exc.audit_details, **extra)


@csrf_exempt  # any method, no cookie: the answer is the same JSON 404
def not_found(request, *args, **kwargs) -> HttpResponse:
    """Unknown routes under /manage: 404 as JSON (the reference answers `404 page not found` as text)."""
    return error("404 page not found", 404)


def exception_handler(exc, context):
    """Every error of a /manage view is a JSON body; nothing falls through to Django's HTML pages."""
    view = context.get("view")
    if isinstance(exc, services.ServiceError):
        exc = from_service_error(exc)
    if isinstance(exc, APIError):
        response = error(exc.message, exc.status_code, **exc.extra)
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, exceptions.MethodNotAllowed):
        response = error("method not allowed", 405)
        response["Allow"] = ", ".join(view.allowed_methods) if view else ""
        return response
    if isinstance(exc, exceptions.APIException):
        return error(str(exc.detail), exc.status_code)
    request = context.get("request")
    method = request.method if request is not None else ""
    message = getattr(view, "failure_messages", {}).get(method, "internal server error")
    kind = "database error" if isinstance(exc, DatabaseError) else "unexpected error"
    logger.exception("management API: %s (%s)", kind, message)
    if request is not None and view is not None and (action := getattr(view, "audit_actions", {}).get(method)):
        # The database may be what failed; the view's auditor still writes the JSONL line.
        view.audit_unexpected_failure(request, action, message)
    return error(message, 500)
