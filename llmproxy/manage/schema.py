"""The OpenAPI document of /manage: schema extensions for the strict fields, shared error responses, the view."""

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers

from .compat_spectacular import default_field_schema, default_serializer_schema
from .fields import RequestSerializer, SchemaHintsMixin
from .views import JSONOnly


class StrictFieldSchema(OpenApiSerializerFieldExtension):
    target_class = SchemaHintsMixin
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {**default_field_schema(auto_schema, self.target, direction), **self.target.schema_hints}


class RequestSerializerSchema(OpenApiSerializerExtension):
    target_class = RequestSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = default_serializer_schema(auto_schema, self.target, direction)
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


THROTTLED = {
    "description": (
        "Too many failed management authentications from this client address (MANAGEMENT_AUTH_FAILURE_LIMIT"
        ' per MANAGEMENT_AUTH_FAILURE_WINDOW), whatever token is sent: `{"error":"too many failed management'
        ' authentications from this address","retry_after_seconds":N}`.'
    ),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until the window ends."}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_throttling(result, generator, request, public):
    """Postprocessing hook: every operation that can answer 401 can also answer 429 (auth_failures.py)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "401" in operation.get("responses", {}):
                operation["responses"]["429"] = THROTTLED
    return result


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, in the reference's wording.")
    description = serializers.CharField(required=False, help_text="Which field or value was wrong, when known.")
    code = serializers.CharField(required=False, help_text="A stable code: project_inactive, request_too_large.")
    message = serializers.CharField(required=False, help_text="Extra explanation (project deletion).")
    retry_after_seconds = serializers.IntegerField(required=False, help_text="On a 429: seconds to wait.")

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
            "llmproxy.manage.schema.require_request_bodies",
            "llmproxy.manage.schema.document_throttling",
        ],
        "SCHEMA_PATH_PREFIX_TRIM": False,
    }
