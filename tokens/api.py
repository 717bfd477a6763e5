"""/manage/tokens: mint, list, show, update and revoke proxy tokens."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from audit.api import AuditedManagementView
from llmproxy.manage import (
    TOO_LARGE,
    UNAUTHORIZED,
    APIError,
    RequestSerializer,
    RFC3339Field,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    error_response,
    get_or_404,
    parse_body,
    parse_uuid,
    server_error,
)
from projects.api import get_project_or_404

from .models import Token
from .services import (
    MAX_DURATION_MINUTES,
    MAX_REQUESTS_LIMIT,
    token_create,
    token_revoke,
    token_update,
    validate_duration,
    validate_max_requests,
)

TOKEN_ID = OpenApiParameter(
    "token_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The token's id (not the `sk-` secret)."
)
NOT_FOUND = error_response('`{"error":"token not found"}` (also for ids that are not UUIDs).')
ID_REQUIRED = error_response('`{"error":"token ID is required"}` (`/manage/tokens/` with no id).')


class TokenSerializer(serializers.Serializer):
    """A token as lists and reads show it: the secret obfuscated (`sk-ABCD**************WXYZ`), never a hash."""

    id = serializers.UUIDField()
    token = serializers.CharField(source="obfuscated")
    project_id = serializers.UUIDField()
    expires_at = RFC3339Field(allow_null=True)
    is_active = serializers.BooleanField()
    request_count = serializers.IntegerField()
    max_requests = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    created_at = RFC3339Field()
    last_used_at = RFC3339Field(allow_null=True)
    cache_hit_count = serializers.IntegerField()

    class Meta:
        ref_name = "TokenListResponse"


class TokenCreatedSerializer(serializers.Serializer):
    """The only response that ever carries the full token."""

    id = serializers.UUIDField()
    token = serializers.CharField(help_text="The full `sk-...` token. Shown once, never again.")
    expires_at = RFC3339Field()
    max_requests = serializers.IntegerField(required=False, help_text="Present only for a limited token.")

    class Meta:
        ref_name = "TokenCreated"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not data.get("max_requests"):
            data.pop("max_requests", None)  # Go's omitempty
        return data


class TokenCreateRequest(RequestSerializer):
    """POST /manage/tokens. Unknown fields are refused."""

    project_id = StrictCharField(schema={"format": "uuid", "minLength": 1})
    duration_minutes = StrictIntegerField(
        schema={"minimum": 1, "maximum": MAX_DURATION_MINUTES}, help_text="Lifetime in minutes (at most one year)."
    )
    max_requests = StrictIntegerField(
        schema={"minimum": 0, "maximum": MAX_REQUESTS_LIMIT}, help_text="Request quota; 0 or absent: unlimited."
    )
    schema_required = ("project_id", "duration_minutes")

    class Meta:
        ref_name = "TokenCreateRequest"


class TokenUpdateRequest(RequestSerializer):
    """PATCH /manage/tokens/{id}: at least one field. Unknown fields are refused."""

    is_active = StrictBooleanField(help_text="false revokes, true reactivates.")
    max_requests = StrictIntegerField(
        schema={"minimum": 0, "maximum": MAX_REQUESTS_LIMIT}, help_text="New quota; 0 means unlimited."
    )

    schema_extra = {"minProperties": 1}  # {} is "no fields to update"

    class Meta:
        ref_name = "TokenUpdateRequest"


def get_token_or_404(token_id) -> Token:
    return get_or_404(Token.objects, token_id, "token")


class TokenListView(AuditedManagementView):
    """GET: tokens, newest first, obfuscated (audited: token.list). POST: mint one (token.create)."""

    failure_messages = {"GET": "failed to list tokens", "POST": "failed to store token"}
    audit_actions = {"GET": "token.list", "POST": "token.create"}

    @extend_schema(
        operation_id="tokens_list",
        tags=["tokens"],
        summary="List tokens, newest first",
        parameters=[
            OpenApiParameter(
                "projectId",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="Only this project's tokens (camelCase, as in the reference). Empty: no filter; "
                "an id that is not a project's matches nothing.",
            )
        ],
        responses={200: TokenSerializer(many=True), 401: UNAUTHORIZED, 500: server_error("failed to list tokens")},
    )
    def get(self, request):
        project_id = request.query_params.get("projectId", "")
        queryset = Token.objects.order_by("-created_at")
        if project_id:
            pk = parse_uuid(project_id)
            queryset = queryset.filter(project_id=pk) if pk else queryset.none()
        tokens = list(queryset)
        details = {"token_count": len(tokens)}
        if project_id:
            details["filtered_by_project"] = True
        self.audited(request, "token.list", project_id=project_id).success(details)
        return Response(TokenSerializer(tokens, many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        tags=["tokens"],
        summary="Mint a token for an active project (200, as the reference)",
        request=TokenCreateRequest,
        responses={
            200: TokenCreatedSerializer,
            400: error_response(
                'In this order: `{"error":"invalid request body"}` (with a `description`), '
                '`{"error":"duration_minutes exceeds maximum allowed"}`, '
                '`{"error":"project_id and duration_minutes are required"}` (duration missing or <= 0), '
                '`{"error":"project_id is required"}`, `{"error":"max_requests must be >= 0"}`.'
            ),
            401: UNAUTHORIZED,
            403: error_response('`{"error":"cannot create tokens for inactive projects","code":"project_inactive"}`.'),
            404: error_response('`{"error":"project not found"}`.'),
            413: TOO_LARGE,
            500: server_error("failed to store token"),
        },
    )
    def post(self, request):
        with self.audited(request, "token.create") as op:
            data = parse_body(request, TokenCreateRequest)
            project_id = op.project_id = data.get("project_id", "")
            validate_duration(data.get("duration_minutes", 0))
            if not project_id:
                raise APIError("project_id is required", audit={"validation_error": "missing project_id"})
            validate_max_requests(data.get("max_requests"))
            token, secret = token_create(
                project=get_project_or_404(project_id),
                duration_minutes=data["duration_minutes"],
                max_requests=data.get("max_requests"),
                ctx=op.ctx,
            )
        body = {"id": token.id, "token": secret, "expires_at": token.expires_at, "max_requests": token.max_requests}
        return Response(TokenCreatedSerializer(body).data)


class TokenDetailView(AuditedManagementView):
    """One token by id. Audited as token.read, token.update and token.revoke."""

    failure_messages = {"PATCH": "failed to update token", "DELETE": "failed to revoke token"}
    audit_actions = {"PATCH": "token.update", "DELETE": "token.revoke"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if kwargs.get("token_id") in ("", "/"):  # checked before the method, as the reference does
            raise APIError("token ID is required", 400)

    @extend_schema(
        operation_id="tokens_retrieve",
        tags=["tokens"],
        summary="Show a token",
        parameters=[TOKEN_ID],
        responses={200: TokenSerializer, 400: ID_REQUIRED, 401: UNAUTHORIZED, 404: NOT_FOUND},
    )
    def get(self, request, token_id):
        with self.audited(request, "token.read", token_id=token_id) as op:
            token = get_token_or_404(token_id)
        op.project_id, op.token_id = str(token.project_id), str(token.id)
        op.success()
        return Response(TokenSerializer(token).data)

    @extend_schema(
        operation_id="tokens_update",
        tags=["tokens"],
        summary="Revoke, reactivate or change the quota of a token",
        parameters=[TOKEN_ID],
        request=TokenUpdateRequest,
        responses={
            200: TokenSerializer,
            400: error_response(
                'In this order: `{"error":"token ID is required"}`, `{"error":"invalid request body"}` (with a '
                '`description`), then after the lookup `{"error":"max_requests must be >= 0"}`, '
                '`{"error":"no fields to update"}`.'
            ),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            413: TOO_LARGE,
            500: server_error("failed to update token"),
        },
    )
    def patch(self, request, token_id):
        with self.audited(request, "token.update", token_id=token_id) as op:
            data = parse_body(request, TokenUpdateRequest)
            token = get_token_or_404(token_id)
            op.project_id = str(token.project_id)
            token = token_update(token=token, ctx=op.ctx, **data)
        return Response(TokenSerializer(token).data)

    @extend_schema(
        operation_id="tokens_destroy",
        tags=["tokens"],
        summary="Revoke a token (idempotent)",
        parameters=[TOKEN_ID],
        responses={
            204: None,
            400: ID_REQUIRED,
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            500: server_error("failed to revoke token"),
        },
    )
    def delete(self, request, token_id):
        with self.audited(request, "token.revoke", token_id=token_id) as op:
            token = get_token_or_404(token_id)
        token_revoke(token=token, ctx=op.ctx)
        response = HttpResponse(status=204)
        del response["Content-Type"]
        return response
