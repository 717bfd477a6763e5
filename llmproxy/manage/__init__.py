"""The management-API framework (/manage/*): what every app's views import.

errors (JSON error bodies, service-error kinds to HTTP statuses), auth (the management token), views (the
base view), parsing (strict bodies and ids), fields (strict request fields, timestamps), schema (the
OpenAPI document), urls (the routes). It imports no app; the apps import it.
"""

from .errors import APIError, error, from_service_error, invalid_body, not_found
from .fields import (
    RequestSerializer,
    RFC3339Field,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from .parsing import get_or_404, parse_body, parse_uuid, read_body, read_json
from .schema import (
    METHOD_NOT_ALLOWED,
    TOO_LARGE,
    UNAUTHORIZED,
    ErrorSerializer,
    OpenAPIView,
    error_response,
    server_error,
)
from .views import ManagementView

__all__ = [
    "METHOD_NOT_ALLOWED",
    "TOO_LARGE",
    "UNAUTHORIZED",
    "APIError",
    "ErrorSerializer",
    "ManagementView",
    "OpenAPIView",
    "RFC3339Field",
    "RequestSerializer",
    "StrictBooleanField",
    "StrictCharField",
    "StrictIntegerField",
    "error",
    "error_response",
    "from_service_error",
    "get_or_404",
    "invalid_body",
    "not_found",
    "parse_body",
    "parse_uuid",
    "read_body",
    "read_json",
    "server_error",
]
