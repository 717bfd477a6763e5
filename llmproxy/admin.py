"""The admin site: Django's own, with the proxy's headline counts on the index page.

Installed as `llmproxy.admin.ProxyAdminConfig` in place of `django.contrib.admin`, so `admin.site`
(used by every `@admin.register` and by `llmproxy/urls.py`) is a `ProxyAdminSite`.
This module is imported while the app registry loads, and the apps import it: models are looked up in the
registry when a page is drawn.
"""

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models import Sum


def adopt(obj, saved) -> None:
    """Turn the admin's unsaved `obj` into the row a service just created, so the admin's redirects and logs work."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


def dashboard_counts() -> dict:
    """Projects, tokens, active tokens (active and not expired) and total requests: the reference dashboard's cards."""
    # Named in the app registry, not imported: llmproxy sits below the apps, which import it.
    project, token = apps.get_model("projects", "Project"), apps.get_model("tokens", "Token")
    return {
        "projects": project.objects.count(),
        "tokens": token.objects.count(),
        "active_tokens": token.objects.active().count(),
        "total_requests": token.objects.aggregate(total=Sum("request_count"))["total"] or 0,
    }


class ProxyAdminSite(admin.AdminSite):
    site_header = "LLM Proxy administration"
    site_title = "LLM Proxy admin"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        from dispatch.status import admin_dispatch_figures

        context = {"proxy_counts": dashboard_counts(), "dispatch_figures": admin_dispatch_figures()}
        return super().index(request, {**context, **(extra_context or {})})


class ProxyAdminConfig(AdminConfig):
    default_site = "llmproxy.admin.ProxyAdminSite"
