"""State changes on projects, shared by the management API, the admin and commands. Each one is audited.

Revoking a project's tokens is a change to the project's own set of tokens, reached through the
`project.tokens` relation: the tokens app depends on this one, never the reverse.
"""

from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import AuditContext, audit_log
from llmproxy.proxy import invalidation
from llmproxy.services import CONFLICT, ServiceError

from .models import Project

MAX_NAME_LENGTH = 255
MAX_KEY_LENGTH = 4096


def validate_api_key(api_key: str) -> None:
    if "..." in api_key or "****" in api_key:
        raise ServiceError(
            "cannot save obfuscated API key - please provide the full API key",
            audit_reason="cannot save obfuscated API key",
        )
    if len(api_key) > MAX_KEY_LENGTH:
        raise ServiceError(f"api_key must be at most {MAX_KEY_LENGTH} characters")


def validate_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise ServiceError(f"name must be at most {MAX_NAME_LENGTH} characters")


@transaction.atomic
def project_create(*, name: str, api_key: str, ctx: AuditContext | None = None) -> Project:
    """Create an active project holding `api_key` (encrypted)."""
    if not name or not api_key:
        raise ServiceError(
            "name and api_key are required",
            audit_reason="missing required fields",
            details={"name_provided": bool(name), "api_key_provided": bool(api_key)},
        )
    validate_name(name)
    validate_api_key(api_key)
    now = timezone.now()
    project = Project(name=name, created_at=now, updated_at=now)
    project.set_api_key(api_key)
    try:
        with transaction.atomic():
            project.save(force_insert=True)
    except IntegrityError:
        raise ServiceError("a project with this name already exists", kind=CONFLICT) from None
    audit_log("project.create", "success", ctx, project_id=project.id, details={"project_name": name})
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    api_key: str | None = None,
    is_active: bool | None = None,
    revoke_tokens: bool = False,
    ctx: AuditContext | None = None,
) -> tuple[Project, int]:
    """Apply the given changes; deactivating with `revoke_tokens` also revokes the project's active tokens.

    Returns the project and how many tokens were revoked.
    """
    if revoke_tokens and is_active is not False:
        raise ServiceError("revoke_tokens requires is_active=false")
    updated: list[str] = []
    if name is not None and name != project.name:
        validate_name(name)
        if not name:
            raise ServiceError("name must not be empty")
        project.name = name
        updated.append("name")
    if api_key:  # an empty key means "unchanged", as in the reference
        validate_api_key(api_key)
        project.set_api_key(api_key)
        updated.append("api_key")
    flipped_off = False
    if is_active is not None and is_active != project.is_active:
        project.is_active = is_active
        project.deactivated_at = None if is_active else timezone.now()
        flipped_off = not is_active
        updated += ["is_active", "deactivated_at"]
    project.updated_at = timezone.now()
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise ServiceError("a project with this name already exists", kind=CONFLICT) from None
    revoked = project_revoke_tokens(project=project, ctx=ctx, audit=False)[0] if flipped_off and revoke_tokens else 0
    details: dict[str, object] = {"updated_fields": updated, "project_name": project.name}
    if revoke_tokens:
        details["tokens_revoked"] = revoked
    audit_log("project.update", "success", ctx, project_id=project.id, details=details)
    if "api_key" in updated or "is_active" in updated:
        transaction.on_commit(lambda: invalidation.project_changed(str(project.id)))
    return project, revoked


def project_deactivate(*, project: Project, revoke_tokens: bool = False, ctx: AuditContext | None = None) -> int:
    """Deactivate a project (optionally revoking its tokens); returns the number of tokens revoked."""
    return project_update(project=project, is_active=False, revoke_tokens=revoke_tokens, ctx=ctx)[1]


def project_activate(*, project: Project, ctx: AuditContext | None = None) -> Project:
    return project_update(project=project, is_active=True, ctx=ctx)[0]


@transaction.atomic
def project_revoke_tokens(*, project: Project, ctx: AuditContext | None = None, audit: bool = True) -> tuple[int, int]:
    """Revoke every active token of a project. Returns (revoked, already revoked)."""
    tokens = list(project.tokens.select_for_update().only("id", "token_hash", "is_active"))
    active = [t for t in tokens if t.is_active]
    project.tokens.filter(id__in=[t.id for t in active]).update(is_active=False, deactivated_at=timezone.now())
    for token in active:
        # Bound per token: every process drops its cached check of this token once the revocation is stored.
        transaction.on_commit(partial(invalidation.token_changed, token.token_hash))
    if audit:
        details = {
            "total_tokens": len(tokens),
            "revoked_count": len(active),
            "already_revoked_count": len(tokens) - len(active),
            "failed_count": 0,
        }
        audit_log("token.revoke_batch", "success", ctx, project_id=project.id, details=details)
    return len(active), len(tokens) - len(active)
