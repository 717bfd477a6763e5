"""The usage dashboard in the admin: listed on the index as Usage analytics › Usage, read-only.

Registering the rollup model gives the page its admin URL, permission (`usage.view_usagerollup`)
and index link; its list view is replaced by the dashboard (charts and tables from the hourly rollups).
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from projects.models import Project
from usage.models import UsageRollup
from usage.report import WINDOWS, usage_report

if TYPE_CHECKING:  # django-stubs makes ModelAdmin generic; at run time it is not subscriptable
    _ModelAdmin = admin.ModelAdmin[UsageRollup]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(UsageRollup)
class UsageDashboardAdmin(_ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRollup | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UsageRollup | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        window = request.GET.get("window", "24h")
        project_id = request.GET.get("project", "")
        report = usage_report(window, project_id=project_id)
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage",
            "opts": self.model._meta,
            "report": report,
            "windows": [(key, label) for key, (label, _span) in WINDOWS.items()],
            "project_filter": project_id,
            "retention_days": settings.USAGE_RETENTION_DAYS,
            "project_choices": [(str(pk), name) for pk, name in Project.objects.values_list("id", "name")],
            "chart_data": {"series": report["series"], "projects": report["projects"][:20]},
        }
        return TemplateResponse(request, "admin/usage/dashboard.html", context)
