"""Projects in the admin. Every write goes through the project and token services, audited as the admin user."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.services import AuditContext
from llmproxy.admin import adopt
from llmproxy.services import ServiceError

from .models import Project
from .services import (
    project_activate,
    project_create,
    project_deactivate,
    project_revoke_tokens,
    project_update,
    validate_api_key,
)

CHANGE_DATES = ["deactivated_at", "created_at", "updated_at"]


class ProjectForm(forms.ModelForm):
    # Write-only: never rendered back, so the page source never holds the key. Empty on edit = unchanged.
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "size": 60}),
    )
    revoke_tokens = forms.BooleanField(
        label="Revoke all tokens",
        required=False,
        help_text="With “Active” unticked: also revoke every token of the project.",
    )

    class Meta:
        model = Project
        fields = ["name", "api_key", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        adding = self.instance._state.adding
        self.fields["api_key"].required = adding
        self.fields["api_key"].help_text = (
            "The upstream provider key. Stored encrypted; it is never shown again."
            if adding
            else f"Current key: {self.instance.api_key_obfuscated}. Leave empty to keep it."
        )
        if "is_active" in self.fields:
            self.fields["is_active"].label = "Active"
            self.fields["is_active"].help_text = "Untick to deactivate: the proxy refuses its tokens (403)."

    def clean_api_key(self) -> str:
        api_key = self.cleaned_data["api_key"]
        if api_key:
            try:
                validate_api_key(api_key)
            except ServiceError as exc:
                raise forms.ValidationError(exc.message) from None
        return api_key

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("revoke_tokens") and data.get("is_active", True):
            self.add_error("revoke_tokens", "Tokens are revoked only when deactivating: untick “Active” too.")
        return data


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("inactive", "Inactive")]

    def queryset(self, request, queryset):
        if self.value() in ("active", "inactive"):
            return queryset.filter(is_active=self.value() == "active")
        return queryset


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm
    list_display = ["name", "api_key_display", "status", "tokens_display", "created_at"]
    search_fields = ["name"]
    list_filter = [StatusFilter]
    ordering = ["name"]
    actions = ["deactivate", "deactivate_and_revoke", "activate", "revoke_all_tokens"]
    readonly_fields = ["api_key_display", "status", "tokens_display", *CHANGE_DATES]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "api_key"]
        # The current key shows (obfuscated) in the key field's help text, not as a second "API key" row.
        return ["name", "api_key", "is_active", "revoke_tokens", "status", "tokens_display", *CHANGE_DATES]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_queryset(self, request):
        live = Q(tokens__is_active=True) & (
            Q(tokens__expires_at__isnull=True) | Q(tokens__expires_at__gt=timezone.now())
        )
        return (
            super()
            .get_queryset(request)
            .annotate(token_total=Count("tokens"), token_active=Count("tokens", filter=live))
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # as in the reference: deactivate instead, so tokens and the audit trail keep their project

    @admin.display(description="API key")
    def api_key_display(self, obj: Project) -> str:
        return obj.api_key_obfuscated

    @admin.display(description="Status", ordering="is_active")
    def status(self, obj: Project) -> str:
        return "Active" if obj.is_active else "Inactive"

    @admin.display(description="Tokens", ordering="token_total")
    def tokens_display(self, obj: Project) -> str:
        tokens_url = reverse("admin:tokens_token_changelist") + f"?project__id__exact={obj.pk}"
        generate_url = reverse("admin:tokens_token_add") + f"?project={obj.pk}"
        return format_html(
            '<a href="{}">{} active / {} total</a> · <a href="{}">generate</a>',
            tokens_url,
            getattr(obj, "token_active", "?"),
            getattr(obj, "token_total", "?"),
            generate_url,
        )

    def save_model(self, request, obj, form, change) -> None:
        data, ctx = form.cleaned_data, AuditContext.from_admin(request)
        if not change:
            adopt(obj, project_create(name=data["name"], api_key=data["api_key"], ctx=ctx))
        elif form.has_changed():
            # The service compares against the stored row; `obj` already carries the form's values.
            project_update(
                project=Project.objects.get(pk=obj.pk),
                name=data["name"],
                api_key=data["api_key"] or None,
                is_active=data["is_active"],
                revoke_tokens=data["revoke_tokens"],
                ctx=ctx,
            )

    @admin.action(description="Deactivate selected projects", permissions=["change"])
    def deactivate(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        projects = [p for p in queryset if p.is_active]
        for project in projects:
            project_deactivate(project=project, ctx=ctx)
        self.message_user(request, f"Deactivated {len(projects)} project(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected projects and revoke all their tokens", permissions=["change"])
    def deactivate_and_revoke(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        deactivated = revoked = 0
        for project in queryset:
            if project.is_active:
                revoked += project_deactivate(project=project, revoke_tokens=True, ctx=ctx)
                deactivated += 1
            else:
                revoked += project_revoke_tokens(project=project, ctx=ctx)[0]
        self.message_user(
            request, f"Deactivated {deactivated} project(s); revoked {revoked} token(s).", messages.SUCCESS
        )

    @admin.action(description="Activate selected projects", permissions=["change"])
    def activate(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        projects = [p for p in queryset if not p.is_active]
        for project in projects:
            project_activate(project=project, ctx=ctx)
        self.message_user(request, f"Activated {len(projects)} project(s).", messages.SUCCESS)

    @admin.action(description="Revoke all tokens of selected projects", permissions=["change"])
    def revoke_all_tokens(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        revoked = already = 0
        for project in queryset:
            done, before = project_revoke_tokens(project=project, ctx=ctx)
            revoked, already = revoked + done, already + before
        self.message_user(request, f"Revoked {revoked} token(s); {already} were already revoked.", messages.SUCCESS)
