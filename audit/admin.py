"""Audit events in the admin: viewable, never added, changed or deleted (the audit log is append-only, as in the
reference)."""

import json
import uuid

from django.apps import apps
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import AuditEvent


def project_names():
    """Project rows by name. Looked up in the app registry, not imported: the projects app depends on this one
    (its services write audit events), so this one never imports it."""
    return apps.get_model("projects", "Project").objects.values_list("id", "name")


class ProjectFilter(admin.SimpleListFilter):
    """By project name; audit rows keep the project id as text, so this is not a foreign-key filter."""

    title = "project"
    parameter_name = "project_id"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in project_names().order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(project_id=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "action", "actor", "outcome", "client_ip", "project_display"]
    list_filter = ["action", "outcome", "actor", ProjectFilter, "timestamp"]
    date_hierarchy = "timestamp"
    search_fields = [
        "request_id",
        "correlation_id",
        "client_ip",
        "action",
        "actor",
        "method",
        "path",
        "reason",
        "metadata",
    ]
    list_per_page = 50
    fieldsets = [
        ("Basic information", {"fields": ["timestamp", "action", "actor", "outcome", "reason"]}),
        ("Network information", {"fields": ["client_ip", "user_agent", "method", "path"]}),
        ("Identifiers", {"fields": ["id", "project_display", "request_id", "correlation_id", "token_id"]}),
        ("Additional details", {"fields": ["metadata_pretty"]}),
    ]
    readonly_fields = [
        "timestamp",
        "action",
        "actor",
        "outcome",
        "reason",
        "client_ip",
        "user_agent",
        "method",
        "path",
        "id",
        "project_display",
        "request_id",
        "correlation_id",
        "token_id",
        "metadata_pretty",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_changelist_instance(self, request):
        # Resolve the page's project names in one query instead of one per row.
        changelist = super().get_changelist_instance(request)
        events = list(changelist.result_list)
        ids = {e.project_id for e in events if e.project_id}
        names = {str(pk): name for pk, name in project_names().filter(pk__in=_valid_uuids(ids))}
        for event in events:
            event.project_name = names.get(event.project_id, "")
        return changelist

    @admin.display(description="Project", ordering="project_id")
    def project_display(self, obj: AuditEvent) -> str:
        if not obj.project_id:
            return "-"
        name = getattr(obj, "project_name", None)
        if name is None:
            row = project_names().filter(pk__in=_valid_uuids({obj.project_id})).first()
            name = row[1] if row else None
        url = reverse("admin:projects_project_change", args=[obj.project_id])
        return format_html('<a href="{}" title="{}">{}</a>', url, obj.project_id, name or obj.project_id)

    @admin.display(description="Metadata")
    def metadata_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, sort_keys=True, default=str))


def _valid_uuids(values: set[str]) -> list[str]:
    """Only values that parse as UUIDs: a malformed id in an old row must not break the page."""
    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            pass
    return valid
