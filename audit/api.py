"""/manage/audit: the audit log, filtered and paginated, newest first; /manage/audit/{id}: one event."""

import json
import math
import re
from datetime import UTC, datetime

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from llmproxy.manage import UNAUTHORIZED, APIError, ManagementView, RFC3339Field, error_response, parse_uuid

from .models import AuditEvent
from .services import AuditContext, AuditedOperation, audited

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
EXACT_FILTERS = (
    "action",
    "client_ip",
    "project_id",
    "outcome",
    "actor",
    "request_id",
    "correlation_id",
    "method",
    "path",
)
SEARCHED = ("request_id", "correlation_id", "client_ip", "action", "actor", "method", "path", "reason", "metadata")
OPTIONAL = (
    "project_id",
    "request_id",
    "correlation_id",
    "client_ip",
    "method",
    "path",
    "user_agent",
    "reason",
    "token_id",
)
_DIGITS = re.compile(r"[0-9]{1,4000}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


class AuditedManagementView(ManagementView):
    """A /manage view whose operations are audited with the request's context.

    `audit_actions` (method -> action) names the failure event an unexpected error (a database failure)
    writes; `self.audited(request, action)` is the skeleton of the method's own events.
    """

    audit_actions: dict[str, str] = {}

    def audited(self, request, action: str, *, project_id: str = "", token_id: str = "") -> AuditedOperation:
        return audited(AuditContext.from_request(request), action, project_id=project_id, token_id=token_id)

    def audit_unexpected_failure(self, request, action: str, message: str) -> None:
        self.audited(request, action).failure({"error": message})


@extend_schema_field(OpenApiTypes.STR)
class JSONTextField(serializers.Field):
    """The details as a JSON *string*, as the reference's `metadata` column is text."""

    def to_representation(self, value):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class AuditEventSerializer(serializers.Serializer):
    """An audit event; empty optional fields are left out."""

    id = serializers.UUIDField()
    timestamp = RFC3339Field()
    action = serializers.CharField()
    actor = serializers.CharField()
    project_id = serializers.CharField(required=False)
    request_id = serializers.CharField(required=False)
    correlation_id = serializers.CharField(required=False)
    client_ip = serializers.CharField(required=False)
    method = serializers.CharField(required=False)
    path = serializers.CharField(required=False)
    user_agent = serializers.CharField(required=False)
    outcome = serializers.ChoiceField(choices=["success", "failure", "denied", "error"])
    reason = serializers.CharField(required=False)
    token_id = serializers.CharField(required=False)
    metadata = JSONTextField(
        required=False, help_text='The event\'s details as a JSON string, e.g. `{"project_count":2}`.'
    )

    class Meta:
        ref_name = "AuditEvent"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for key in OPTIONAL:
            if not data.get(key):
                data.pop(key, None)  # Go's omitempty
        if not instance.metadata:
            data.pop("metadata", None)
        return data


class PaginationSerializer(serializers.Serializer):
    """Where this page sits in the filtered result."""

    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    total_count = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    has_next = serializers.BooleanField()
    has_prev = serializers.BooleanField()

    class Meta:
        ref_name = "Pagination"


class AuditEventPageSerializer(serializers.Serializer):
    """One page of audit events."""

    events = AuditEventSerializer(many=True, help_text="[] when nothing matches (the reference sends null).")
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "AuditEventList"


def _text(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.QUERY, description=description)


# Empty values mean "no filter" / "the default", as in the reference.
TIME_OR_EMPTY = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
COUNT_OR_EMPTY = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 0}]}
LIST_PARAMETERS = [
    *[_text(name, f"Only events whose {name} is exactly this.") for name in EXACT_FILTERS],
    _text("search", "Case-insensitive substring of " + ", ".join(SEARCHED) + "."),
    OpenApiParameter(
        "start_time", TIME_OR_EMPTY, OpenApiParameter.QUERY,
        description="Only events at or after this time (RFC 3339, e.g. 2026-01-06T17:50:11Z). Empty: no filter.",
    ),
    OpenApiParameter(
        "end_time", TIME_OR_EMPTY, OpenApiParameter.QUERY,
        description="Only events at or before this time (RFC 3339). Empty: no filter.",
    ),
    OpenApiParameter("page", COUNT_OR_EMPTY, OpenApiParameter.QUERY, description="From 1 (empty: default 1)."),
    OpenApiParameter(
        "page_size", COUNT_OR_EMPTY, OpenApiParameter.QUERY,
        description=f"Events per page, from 1 (empty: default {DEFAULT_PAGE_SIZE}); values above {MAX_PAGE_SIZE} "
        f"are treated as {MAX_PAGE_SIZE}, as in the reference.",
    ),
]  # fmt: skip


def positive_int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or int(raw) < 1:
        raise APIError(f"invalid {name}", 400, description=f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def parse_time(params, name: str) -> datetime | None:
    """An RFC 3339 date-time (the schema's `format: date-time`); anything else is a 400."""
    raw = params.get(name, "")
    if not raw:
        return None
    text = raw.upper()
    match = _RFC3339.fullmatch(text)
    if match and match.group(1) == "60":  # a leap second: Python has none, the instant before is as good
        text = text[: match.start(1)] + "59" + text[match.end(1) :]
    if match:
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:  # well-formed but impossible, e.g. month 13
            pass
    raise APIError(f"invalid {name}", 400, description=f"{name} must be an RFC 3339 time, e.g. 2026-01-06T17:50:11Z")


def filtered_events(params):
    """The events matching the query's filters (an empty filter is ignored, as in the reference)."""
    events = AuditEvent.objects.all()
    start, end = parse_time(params, "start_time"), parse_time(params, "end_time")
    values = {name: params.get(name, "") for name in (*EXACT_FILTERS, "search")}
    if any("\x00" in value for value in values.values()):
        return events.none()  # nothing stored can contain NUL
    for name in EXACT_FILTERS:
        if values[name]:
            events = events.filter(**{name: values[name]})
    if search := values["search"]:
        events = events.filter(Q(*[Q(**{f"{field}__icontains": search}) for field in SEARCHED], _connector=Q.OR))
    if start:
        events = events.filter(timestamp__gte=start)
    if end:
        events = events.filter(timestamp__lte=end)
    return events


class AuditEventListView(AuditedManagementView):
    """The audit log, newest first (audited: audit.list, after the page is read)."""

    failure_messages = {"GET": "failed to list audit events"}

    @extend_schema(
        operation_id="audit_list",
        tags=["audit"],
        summary="Audit events, newest first, filtered and paginated",
        parameters=LIST_PARAMETERS,
        responses={
            200: AuditEventPageSerializer,
            400: error_response(
                '`{"error":"invalid page"}`, `{"error":"invalid page_size"}` (not a positive integer), '
                '`{"error":"invalid start_time"}`, `{"error":"invalid end_time"}`; `description` says why.'
            ),
            401: UNAUTHORIZED,
        },
    )
    def get(self, request):
        params = request.query_params
        page = positive_int(params, "page", 1)
        page_size = min(positive_int(params, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        events = filtered_events(params).order_by("-timestamp", "-id")
        total = events.count()
        offset = (page - 1) * page_size
        rows = list(events[offset : offset + page_size]) if offset < total else []
        total_pages = math.ceil(total / page_size)
        body = {
            "events": AuditEventSerializer(rows, many=True).data,
            "pagination": {
                "page": page,
                "page_size": page_size,
                "total_count": total,
                "total_pages": total_pages,
                "has_next": page < total_pages,
                "has_prev": page > 1,
            },
        }
        # Written after the page is read, so a listing never contains its own event (as in the reference).
        details = {"events_count": len(rows), "page": page, "page_size": page_size, "total_count": total}
        self.audited(request, "audit.list").success(details)
        return Response(body)


class AuditEventDetailView(AuditedManagementView):
    """One audit event (audited: audit.show)."""

    failure_messages = {"GET": "failed to get audit event"}

    @extend_schema(
        operation_id="audit_retrieve",
        tags=["audit"],
        summary="One audit event",
        parameters=[OpenApiParameter("event_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: AuditEventSerializer,
            400: error_response('`{"error":"audit event ID is required"}` (`/manage/audit/` with no id).'),
            401: UNAUTHORIZED,
            404: error_response('`{"error":"audit event not found"}` (also for ids that are not UUIDs).'),
        },
    )
    def get(self, request, event_id):
        if event_id == "":
            raise APIError("audit event ID is required", 400)
        pk = parse_uuid(event_id)
        event = AuditEvent.objects.filter(pk=pk).first() if pk else None
        if event is None:
            raise APIError("audit event not found", 404)
        body = AuditEventSerializer(event).data
        self.audited(request, "audit.show").success({"audit_event_id": event_id})
        return Response(body)
