"""/manage/projects: list, create, show, update, (refuse to) delete, and revoke all tokens of a project."""

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
    error,
    error_response,
    get_or_404,
    parse_body,
    server_error,
)

from .models import Project
from .services import MAX_KEY_LENGTH, MAX_NAME_LENGTH, project_create, project_revoke_tokens, project_update

PROJECT_ID = OpenApiParameter("project_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The project's id.")
NOT_FOUND = error_response('`{"error":"project not found"}` (also for ids that are not UUIDs).')
CONFLICT = error_response('`{"error":"a project with this name already exists"}` (the reference answers 500).')


class ProjectSerializer(serializers.Serializer):
    """A project as every response shows it: the upstream key obfuscated, never in full."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    api_key = serializers.CharField(
        source="api_key_obfuscated", help_text="Obfuscated: first 8 characters + `...` + last 4."
    )
    is_active = serializers.BooleanField()
    deactivated_at = RFC3339Field(required=False, help_text="Present only while the project is inactive.")
    created_at = RFC3339Field()
    updated_at = RFC3339Field()

    class Meta:
        ref_name = "Project"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("deactivated_at") is None:
            data.pop("deactivated_at", None)  # Go's omitempty
        return data


class ProjectCreateRequest(RequestSerializer):
    """POST /manage/projects. Unknown fields are refused."""

    name = StrictCharField(schema={"minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": r"^[^\u0000]*$"})
    api_key = StrictCharField(
        schema={"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"^(?!.*(\.\.\.|\*\*\*\*))[^\u0000]*$"},
        help_text="The upstream provider key. Stored encrypted; an obfuscated key (`...` or `****`) is refused.",
    )
    schema_required = ("name", "api_key")

    class Meta:
        ref_name = "ProjectCreateRequest"


class ProjectUpdateRequest(RequestSerializer):
    """PATCH /manage/projects/{id}: only the fields sent change. Unknown fields are refused."""

    name = StrictCharField(schema={"minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": r"^[^\u0000]*$"})
    api_key = StrictCharField(
        schema={"maxLength": MAX_KEY_LENGTH, "pattern": r"^(?!.*(\.\.\.|\*\*\*\*))[^\u0000]*$"},
        help_text="A new upstream key; an empty string leaves the key unchanged.",
    )
    is_active = StrictBooleanField(help_text="false deactivates (sets deactivated_at), true reactivates.")
    revoke_tokens = StrictBooleanField(
        help_text="Only with is_active=false: also revoke the project's active tokens when it is deactivated now."
    )

    # revoke_tokens only together with is_active=false (JSON Schema draft 4 has no if/then).
    schema_extra = {
        "anyOf": [
            {"not": {"required": ["revoke_tokens"]}},
            {"required": ["is_active"], "properties": {"is_active": {"enum": [False]}}},
        ]
    }

    class Meta:
        ref_name = "ProjectUpdateRequest"


class RevokeTokensResultSerializer(serializers.Serializer):
    """What a bulk revocation did."""

    revoked_count = serializers.IntegerField()
    already_revoked_count = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    failed_count = serializers.IntegerField(required=False, help_text="Only present when some revocations failed.")

    class Meta:
        ref_name = "RevokeTokensResult"


def get_project_or_404(project_id) -> Project:
    return get_or_404(Project.objects, project_id, "project")


class ProjectListView(AuditedManagementView):
    """GET: every project, by name, keys obfuscated (audited: project.list). POST: create (project.create)."""

    failure_messages = {"GET": "failed to list projects", "POST": "failed to create project"}
    audit_actions = {"GET": "project.list", "POST": "project.create"}

    @extend_schema(
        operation_id="projects_list",
        tags=["projects"],
        summary="List projects, by name",
        responses={200: ProjectSerializer(many=True), 401: UNAUTHORIZED, 500: server_error("failed to list projects")},
    )
    def get(self, request):
        projects = list(Project.objects.order_by("name"))
        self.audited(request, "project.list").success({"project_count": len(projects)})
        return Response(ProjectSerializer(projects, many=True).data)

    @extend_schema(
        operation_id="projects_create",
        tags=["projects"],
        summary="Create a project",
        request=ProjectCreateRequest,
        responses={
            201: ProjectSerializer,
            400: error_response(
                '`{"error":"invalid request body"}` (malformed JSON, wrong types, unknown fields; `description` '
                'names the problem), `{"error":"name and api_key are required"}`, '
                '`{"error":"cannot save obfuscated API key - please provide the full API key"}`, '
                "or a too-long name/key."
            ),
            401: UNAUTHORIZED,
            409: CONFLICT,
            413: TOO_LARGE,
            500: server_error("failed to create project"),
        },
    )
    def post(self, request):
        with self.audited(request, "project.create") as op:
            data = parse_body(request, ProjectCreateRequest)
            project = project_create(name=data.get("name", ""), api_key=data.get("api_key", ""), ctx=op.ctx)
        return Response(ProjectSerializer(project).data, status=201)


class ProjectDetailView(AuditedManagementView):
    """One project. PATCH is audited as project.update; DELETE is always refused (project.delete, failure)."""

    failure_messages = {"PATCH": "failed to update project"}
    audit_actions = {"PATCH": "project.update"}

    @property
    def allowed_methods(self):
        return ["GET", "PATCH", "DELETE"]

    @extend_schema(
        operation_id="projects_retrieve",
        tags=["projects"],
        summary="Show a project",
        parameters=[PROJECT_ID],
        responses={
            200: ProjectSerializer,
            400: error_response('`{"error":"invalid project id"}` (empty id or an id containing `/`).'),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
        },
    )
    def get(self, request, project_id):
        check_project_id(project_id)
        return Response(ProjectSerializer(get_project_or_404(project_id)).data)

    @extend_schema(
        operation_id="projects_update",
        tags=["projects"],
        summary="Rename, re-key, deactivate or reactivate a project",
        parameters=[PROJECT_ID],
        request=ProjectUpdateRequest,
        responses={
            200: ProjectSerializer,
            400: error_response(
                '`{"error":"invalid project id"}`, `{"error":"invalid request body"}` (with a `description`), '
                '`{"error":"revoke_tokens requires is_active=false"}`, the obfuscated-key error, or an empty or '
                "too-long name/key."
            ),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            409: CONFLICT,
            413: TOO_LARGE,
            500: server_error("failed to update project"),
        },
    )
    def patch(self, request, project_id):
        with self.audited(request, "project.update", project_id=project_id) as op:
            check_project_id(project_id, audited=True)
            data = parse_body(request, ProjectUpdateRequest)
            if "revoke_tokens" in data and data.get("is_active") is not False:
                raise APIError(
                    "revoke_tokens requires is_active=false",
                    audit={"validation_error": "revoke_tokens requires is_active=false"},
                )
            project, _ = project_update(project=get_project_or_404(project_id), ctx=op.ctx, **data)
        return Response(ProjectSerializer(project).data)

    @extend_schema(
        operation_id="projects_destroy",
        tags=["projects"],
        summary="Projects cannot be deleted (deactivate them instead)",
        parameters=[PROJECT_ID],
        responses={
            401: UNAUTHORIZED,
            405: error_response(
                'Always: `{"error":"method not allowed","message":"project deletion is not permitted"}` with '
                "`Allow: GET, PATCH`. The attempt is audited (project.delete, failure)."
            ),
        },
    )
    def delete(self, request, project_id):
        details = {"error_type": "method not allowed", "reason": "project deletion is not permitted"}
        self.audited(request, "project.delete", project_id=project_id).failure(details)
        response = error("method not allowed", 405, message="project deletion is not permitted")
        response["Allow"] = "GET, PATCH"
        return response


def check_project_id(project_id: str, *, audited: bool = False) -> None:
    """The reference's 400 for an empty id or one with a slash (`/manage/projects/` or `/manage/projects/a/b`)."""
    if project_id == "" or "/" in project_id:
        audit = {"validation_error": "invalid project id", "provided_id": project_id} if audited else None
        raise APIError("invalid project id", 400, audit=audit)


class ProjectTokensRevokeView(AuditedManagementView):
    """Revoke all active tokens of a project at once (audited: token.revoke_batch)."""

    failure_messages = {"POST": "failed to get project tokens"}
    audit_actions = {"POST": "token.revoke_batch"}

    @extend_schema(
        operation_id="projects_tokens_revoke",
        tags=["projects"],
        summary="Revoke every active token of a project",
        parameters=[PROJECT_ID],
        request=None,
        responses={
            200: RevokeTokensResultSerializer,
            400: error_response('`{"error":"invalid path"}` (empty project id).'),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            500: server_error("failed to get project tokens"),
        },
    )
    def post(self, request, project_id):
        with self.audited(request, "token.revoke_batch", project_id=project_id) as op:
            if project_id == "":
                raise APIError("invalid path", 400)
            project = get_project_or_404(project_id)
            revoked, already = project_revoke_tokens(project=project, ctx=op.ctx)
        body = {"revoked_count": revoked, "already_revoked_count": already, "total_tokens": revoked + already}
        return Response(body)
