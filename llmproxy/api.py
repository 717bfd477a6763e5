"""Shared pieces of the management API (/manage/*): auth, JSON errors, strict request parsing, schema helpers.

Every /manage view subclasses `ManagementView`. Errors are `{"error": "..."}` with `Content-Type:
application/json` (the reference sends the same text as text/plain), in the reference's wording.
"""

import hmac
import json
import logging
import uuid
from datetime import UTC

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from audit.logger import AuditContext, audit_log
from projects.services import ProjectError
from tokens.services import TokenError

logger = logging.getLogger(__name__)

BEARER = "Bearer "  # case-sensitive, as in the reference


# --- Errors -------------------------------------------------------------------


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


def invalid_body(problem: str, *, message: str = "invalid request body") -> APIError:
    """400 with the reference's message and a description naming what was wrong."""
    return APIError(message, 400, audit={"validation_error": message, "error": problem}, description=problem)


def from_service_error(exc: ProjectError | TokenError) -> APIError:
    extra = {"code": exc.code} if getattr(exc, "code", "") else {}
    audit = None
    if not getattr(exc, "audited", False):
        kind = "validation_error" if exc.status == 400 else "error_type"
        audit = {kind: exc.audit_reason, **exc.details, "error": exc.message}
    return APIError(exc.message, exc.status, audit=audit, **extra)


class FailureAudit:
    """Context manager: a service or request error becomes an APIError, after its failure event is written.

    `project_id` / `token_id` can be filled in as they become known inside the block.
    """

    def __init__(self, ctx: AuditContext, action: str, *, project_id: str = "", token_id: str = "") -> None:
        self.ctx, self.action = ctx, action
        self.project_id, self.token_id = project_id, token_id

    def __enter__(self) -> "FailureAudit":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, ProjectError | TokenError):
            api_error = from_service_error(exc)
        elif isinstance(exc, APIError):
            api_error = exc
        else:
            return False
        if api_error.audit is not None:
            details = api_error.audit
            audit_log(
                self.action, "failure", self.ctx, project_id=self.project_id, token_id=self.token_id, details=details
            )
        if api_error is not exc:
            raise api_error from exc
        return False


@csrf_exempt  # any method, no cookie: the answer is the same JSON 404
def not_found(request, *args, **kwargs) -> HttpResponse:
    """Unknown routes under /manage: 404 as JSON (the reference answers `404 page not found` as text)."""
    return error("404 page not found", 404)


def exception_handler(exc, context):
    """Every error of a /manage view is a JSON body; nothing falls through to Django's HTML pages."""
    view = context.get("view")
    if isinstance(exc, APIError):
        return error(exc.message, exc.status_code, **exc.extra)
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
    if request is not None and (action := getattr(view, "audit_actions", {}).get(method)):
        # The database may be what failed; the JSONL line is still written.
        audit_log(action, "failure", AuditContext.from_request(request), details={"error": message})
    return error(message, 500)


# --- Authentication -----------------------------------------------------------


class ManagementTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <MANAGEMENT_TOKEN>`, compared in constant time."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(BEARER) or len(header) <= len(BEARER):
            raise APIError("missing or invalid Authorization header", 401)
        expected = settings.MANAGEMENT_TOKEN
        presented = header[len(BEARER) :]
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise APIError("invalid management token", 401)
        return (None, "management_token")


class ManagementTokenScheme(OpenApiAuthenticationExtension):
    target_class = ManagementTokenAuthentication
    name = "ManagementToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The MANAGEMENT_TOKEN of this deployment."}


class JSONOnly(BaseContentNegotiation):
    """JSON whatever the client's Accept header says, as the reference does."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ManagementAuthMixin:
    """For a DRF view under /manage: management-token auth, JSON errors, the reference's method handling.

    `failure_messages` (method -> the reference's 500 message) and `audit_actions` (method -> the audit
    action written as a failure on an unexpected error) shape what a database failure looks like.
    """

    authentication_classes = [ManagementTokenAuthentication]
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    metadata_class = None  # OPTIONS is not answered: 405 as in the reference
    http_method_names = ["get", "post", "patch", "delete"]  # HEAD is 405 too (Go's mux does not map it to GET)
    failure_messages: dict[str, str] = {}
    audit_actions: dict[str, str] = {}

    @property
    def default_response_headers(self):
        return {}  # DRF adds Allow (and Vary) to every response; Allow goes on 405s only

    def get_exception_handler(self):
        return exception_handler


class ManagementView(ManagementAuthMixin, APIView):
    """Base of every /manage view."""


# --- Request parsing ----------------------------------------------------------


def read_body(request) -> bytes:
    """The raw body, refused with 413 beyond MAX_REQUEST_SIZE (by Content-Length, then by actual size)."""
    limit = settings.MAX_REQUEST_SIZE
    too_large = APIError(
        "Request body too large", 413, audit={"validation_error": "request body too large"}, code="request_too_large"
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


def read_json(request, *, message: str = "invalid request body"):
    """The decoded JSON body, whatever the Content-Type (the reference decodes without looking at it)."""
    body = read_body(request)
    if not body.strip():
        raise invalid_body("the request body is empty: send a JSON object", message=message)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise invalid_body(f"the request body is not valid JSON: {exc}", message=message) from None


def parse_body(request, serializer_class: type[serializers.Serializer]) -> dict:
    """Validate a JSON object body strictly: no unknown fields, exact JSON types, no nulls (leave a field out)."""
    data = read_json(request)
    if not isinstance(data, dict):
        raise invalid_body(f"the request body must be a JSON object, not {_json_type(data)}")
    serializer = serializer_class(data=data)
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        raise invalid_body(f"unknown field: {unknown[0]}")
    if nulls := sorted(key for key, value in data.items() if value is None):
        raise invalid_body(f"{nulls[0]} must not be null: leave the field out instead")
    if not serializer.is_valid():
        field, problems = next(iter(serializer.errors.items()))
        raise invalid_body(f"{field} {problems[0]}")
    return dict(serializer.validated_data)


def _json_type(value) -> str:
    names = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), "a value")


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def get_or_404(queryset, pk, what: str):
    """The row with primary key `pk`, or APIError 404 `<what> not found` (audited); ids that are not UUIDs too."""
    row = None
    if (parsed := parse_uuid(pk)) is not None:
        row = queryset.filter(pk=parsed).first()
    if row is None:
        raise APIError(f"{what} not found", 404, audit={"error_type": f"{what} not found"})
    return row


# --- Strict fields: JSON types exactly as sent, schema constraints without DRF's own messages ------------------


class _SchemaHintsMixin:
    """`schema={...}` adds constraints to the field's OpenAPI schema only; the views check them with the
    reference's messages and order."""

    def __init__(self, *args, schema: dict | None = None, **kwargs) -> None:
        self.schema_hints = schema or {}
        super().__init__(*args, **kwargs)


class StrictCharField(_SchemaHintsMixin, serializers.CharField):
    default_error_messages = {
        "invalid": "must be a string",
        "nul": "must not contain NUL characters",
        "encoding": "must be valid Unicode text",
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        # "" passes through: the views judge blank values with the reference's messages
        # ("name and api_key are required"), and the schema says so with its own minLength.
        return "" if data == "" else super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            self.fail("nul")  # no database column can hold it
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("encoding")  # lone surrogates from \\ud800 escapes
        return data


class StrictBooleanField(_SchemaHintsMixin, serializers.BooleanField):
    default_error_messages = {"invalid": "must be a boolean (true or false)"}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(_SchemaHintsMixin, serializers.IntegerField):
    default_error_messages = {"invalid": "must be an integer"}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictFieldSchema(OpenApiSerializerFieldExtension):
    target_class = _SchemaHintsMixin
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **self.target.schema_hints}


class RequestSerializer(serializers.Serializer):
    """A request body: unknown fields are refused, so the schema says `additionalProperties: false`.

    `schema_required` lists the fields the schema marks required; the views check them with the
    reference's messages (e.g. "name and api_key are required").
    """

    schema_required: tuple[str, ...] = ()
    schema_extra: dict = {}  # further JSON-schema constraints the view enforces (e.g. minProperties)


class RequestSerializerSchema(OpenApiSerializerExtension):
    target_class = RequestSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        if self.target.schema_required:
            schema["required"] = list(self.target.schema_required)
        return {**schema, **self.target.schema_extra}


def require_request_bodies(result, generator, request, public):
    """Postprocessing hook: every documented request body is required (an empty body is a 400, as in the
    reference, even where no single field is required)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result


class RFC3339Field(serializers.DateTimeField):
    """`2026-01-06T17:50:11.123456Z`: RFC 3339, UTC, as the reference's Go timestamps."""

    def to_representation(self, value):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- Schema helpers ------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, in the reference's wording.")
    description = serializers.CharField(required=False, help_text="Which field or value was wrong, when known.")
    code = serializers.CharField(required=False, help_text="A stable code: project_inactive, request_too_large.")
    message = serializers.CharField(required=False, help_text="Extra explanation (project deletion).")

    class Meta:
        ref_name = "Error"


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


UNAUTHORIZED = error_response(
    '`{"error":"missing or invalid Authorization header"}` (no `Bearer ` prefix, case-sensitive) or '
    '`{"error":"invalid management token"}`.'
)
TOO_LARGE = error_response(
    'Body over MAX_REQUEST_SIZE: `{"error":"Request body too large","code":"request_too_large"}`.'
)
METHOD_NOT_ALLOWED = error_response('`{"error":"method not allowed"}` with an `Allow` header.')


def server_error(message: str) -> OpenApiResponse:
    return error_response(f'Database failure: `{{"error":"{message}"}}`.')


class OpenAPIView(SpectacularAPIView):
    """GET /manage/openapi.json: the schema, generated from the views and serializers. Public, like most
    OpenAPI documents: it describes the API and holds no secret."""

    renderer_classes = [OpenApiJsonRenderer2]
    content_negotiation_class = JSONOnly
    authentication_classes: list = []
    permission_classes: list = []
    custom_settings = {
        "TITLE": "LLM Proxy management API",
        "DESCRIPTION": (
            "The reference llm-proxy's management API (/manage/*). Every route needs "
            '`Authorization: Bearer <MANAGEMENT_TOKEN>`. Errors are JSON `{"error": "..."}`.'
        ),
        "SCHEMA_PATH_PREFIX": "/manage",
        "COMPONENT_SPLIT_PATCH": False,
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "llmproxy.api.require_request_bodies",
        ],
        "SCHEMA_PATH_PREFIX_TRIM": False,
    }
