"""Proxy tokens in the admin. The secret is shown once, on the page after creation; only its hash is stored."""

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.services import AuditContext
from llmproxy.admin import adopt
from projects import crypto
from projects.models import Project

from .models import TOKEN_RE, Token, hash_token
from .services import MAX_DURATION_MINUTES, token_create, token_revoke, token_update

# Secrets wait here between the add view's redirect and the page that shows them; that page pops them.
PENDING_SECRETS_KEY = "tokens:pending_secrets"
DURATION_PRESETS = [
    ("60", "1 hour"),
    ("1440", "1 day"),
    ("10080", "7 days"),
    ("43200", "30 days"),
    ("custom", "Custom"),
]


class TokenAddForm(forms.ModelForm):
    duration = forms.ChoiceField(label="Lifetime", choices=DURATION_PRESETS, initial="1440")
    custom_minutes = forms.IntegerField(
        label="Custom lifetime (minutes)",
        required=False,
        min_value=1,
        max_value=MAX_DURATION_MINUTES,
        help_text=f"Used when Lifetime is “Custom”; at most {MAX_DURATION_MINUTES} (one year).",
    )

    class Meta:
        model = Token
        fields = ["project", "max_requests"]
        help_texts = {"max_requests": "Leave empty for unlimited requests."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The model form made these fields from the model: a choice of projects and an integer.
        project_field = cast(forms.ModelChoiceField, self.fields["project"])
        project_field.queryset = Project.objects.active()
        project_field.help_text = "Only active projects can get tokens."
        cast(forms.IntegerField, self.fields["max_requests"]).min_value = 1

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("duration") == "custom":
            if not data.get("custom_minutes"):
                self.add_error("custom_minutes", "Enter the lifetime in minutes.")
            data["duration_minutes"] = data.get("custom_minutes")
        elif data.get("duration"):
            data["duration_minutes"] = int(data["duration"])
        return data


class TokenChangeForm(forms.ModelForm):
    class Meta:
        model = Token
        fields = ["is_active", "max_requests"]
        labels = {"is_active": "Active"}
        help_texts = {
            "is_active": "Untick to revoke; tick to reactivate a revoked token.",
            "max_requests": "Leave empty for unlimited requests.",
        }


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(is_active=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "expired":
            return queryset.filter(is_active=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(is_active=False)
        return queryset


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["token_display", "project_link", "usage", "status", "expires_at", "last_used_at", "created_at"]
    list_filter = [StatusFilter, "project"]
    list_select_related = ["project"]
    search_fields = ["project__name", "token_prefix", "token_suffix"]
    actions = ["revoke", "reactivate"]
    readonly_fields = [
        "token_display",
        "project_link",
        "status",
        "usage",
        "expires_at",
        "created_at",
        "last_used_at",
        "deactivated_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = TokenAddForm if obj is None else TokenChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["project", "duration", "custom_minutes", "max_requests"]
        return [
            "token_display",
            "project_link",
            "status",
            "usage",
            "is_active",
            "max_requests",
            "expires_at",
            "created_at",
            "last_used_at",
            "deactivated_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row keeps the usage history

    def get_search_results(self, request, queryset, search_term):
        # An operator holding a full token can find it: only its hash is stored.
        if TOKEN_RE.match(search_term.strip()):
            return queryset.filter(token_hash=hash_token(search_term.strip())), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Token", ordering="token_prefix")
    def token_display(self, obj: Token) -> str:
        return obj.obfuscated

    @admin.display(description="Project", ordering="project__name")
    def project_link(self, obj: Token) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:projects_project_change", args=[obj.project_id]), obj.project
        )

    @admin.display(description="Requests", ordering="request_count")
    def usage(self, obj: Token) -> str:
        limit = obj.max_requests if obj.max_requests is not None else "unlimited"
        return f"used {obj.request_count} / {limit} (cache {obj.cache_hit_count})"

    @admin.display(description="Status")
    def status(self, obj: Token) -> str:
        return obj.status

    def save_model(self, request, obj, form, change) -> None:
        data, ctx = form.cleaned_data, AuditContext.from_admin(request)
        if not change:
            token, secret = token_create(
                project=data["project"],
                duration_minutes=data["duration_minutes"],
                max_requests=data["max_requests"],
                ctx=ctx,
            )
            adopt(obj, token)
            request.session[PENDING_SECRETS_KEY] = {
                **request.session.get(PENDING_SECRETS_KEY, {}),
                # Encrypted like project keys: the session row lives in the database until the next page.
                str(token.pk): crypto.encrypt(secret),
            }
            return
        changes = {name: data[name] for name in ("is_active", "max_requests") if name in form.changed_data}
        if "max_requests" in changes:
            changes["max_requests"] = changes["max_requests"] or 0  # the service's "unlimited"
        if changes:
            token_update(token=Token.objects.get(pk=obj.pk), ctx=ctx, **changes)

    def add_view(self, request, form_url="", extra_context=None):
        # Every save leads to the page that shows the secret, so the other save buttons would mislead.
        buttons = {"show_save_and_add_another": False, "show_save_and_continue": False}
        return super().add_view(request, form_url, {**buttons, **(extra_context or {})})

    def response_add(self, request, obj, post_url_continue=None):
        return redirect("admin:tokens_token_created", obj.pk)

    def get_urls(self):
        created = path(
            "<uuid:token_id>/created/", self.admin_site.admin_view(self.created_view), name="tokens_token_created"
        )
        return [created, *super().get_urls()]

    def created_view(self, request, token_id):
        """The one page that shows a new token's secret; a reload finds it gone."""
        token = get_object_or_404(Token.objects.select_related("project"), pk=token_id)
        if not self.has_view_permission(request, token):
            raise PermissionDenied
        pending = request.session.get(PENDING_SECRETS_KEY, {})
        sealed = pending.pop(str(token_id), None)
        secret = crypto.decrypt(sealed) if sealed else None
        if sealed is not None:
            request.session[PENDING_SECRETS_KEY] = pending
        context = {
            **self.admin_site.each_context(request),
            "title": "Token created" if secret else "Token",
            "opts": self.opts,
            "token": token,
            "secret": secret,
            "base_url": request.build_absolute_uri("/v1"),
        }
        return TemplateResponse(request, "admin/tokens/token/created.html", context)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        tokens = [t for t in queryset if t.is_active]
        for token in tokens:
            token_revoke(token=token, ctx=ctx)
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tokens", permissions=["change"])
    def reactivate(self, request, queryset) -> None:
        ctx = AuditContext.from_admin(request)
        tokens = [t for t in queryset if not t.is_active]
        for token in tokens:
            token_update(token=token, is_active=True, ctx=ctx)
        self.message_user(request, f"Reactivated {len(tokens)} token(s).", messages.SUCCESS)
