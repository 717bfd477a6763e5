"""State changes on proxy tokens, shared by the management API, the admin and commands. Each one is audited."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import AuditContext, audit_log, obfuscate_id
from llmproxy.proxy import invalidation
from llmproxy.services import FORBIDDEN, ServiceError

from .models import Token, generate_token

MAX_DURATION_MINUTES = 525600
MAX_REQUESTS_LIMIT = 2147483647  # the largest value an integer column holds on every database


def validate_duration(duration_minutes: int) -> None:
    if duration_minutes > MAX_DURATION_MINUTES:
        raise ServiceError(
            "duration_minutes exceeds maximum allowed",
            audit_reason="duration exceeds maximum",
            details={"requested_duration_minutes": duration_minutes, "max_duration_minutes": MAX_DURATION_MINUTES},
        )
    if duration_minutes <= 0:
        raise ServiceError("project_id and duration_minutes are required", audit_reason="missing duration_minutes")


def validate_max_requests(max_requests: int | None) -> None:
    if max_requests is not None and max_requests < 0:
        raise ServiceError("max_requests must be >= 0", details={"requested_max_requests": max_requests})
    if max_requests is not None and max_requests > MAX_REQUESTS_LIMIT:
        raise ServiceError(
            f"max_requests must be <= {MAX_REQUESTS_LIMIT}", details={"requested_max_requests": max_requests}
        )


def token_create(*, project, duration_minutes: int, max_requests: int | None = None, ctx: AuditContext | None = None):
    """Mint a token for an active project. Returns (token row, the secret): the secret exists only here."""
    validate_duration(duration_minutes)
    validate_max_requests(max_requests)
    if not project.is_active:
        # Audited outside any transaction of ours, so the failure event is not rolled back with the error.
        reason = "cannot create tokens for inactive projects"
        details = {"error_type": "project_inactive", "reason": reason}
        audit_log("token.create", "failure", ctx, project_id=project.id, details=details)
        raise ServiceError(reason, kind=FORBIDDEN, code="project_inactive", audited=True)
    with transaction.atomic():
        return _token_insert(project=project, duration_minutes=duration_minutes, max_requests=max_requests, ctx=ctx)


def _token_insert(*, project, duration_minutes: int, max_requests: int | None, ctx: AuditContext | None):
    secret = generate_token()
    expires_at = timezone.now() + timedelta(minutes=duration_minutes)
    token = Token(project=project, expires_at=expires_at)
    token.max_requests = max_requests or None
    token.set_secret(secret)
    token.save(force_insert=True)
    details = {
        "token_id": obfuscate_id(token.id),
        "duration_minutes": duration_minutes,
        "expires_at": expires_at.isoformat(),
    }
    if token.max_requests:
        details["max_requests"] = token.max_requests
    audit_log("token.create", "success", ctx, project_id=project.id, token_id=str(token.id), details=details)
    return token, secret


@transaction.atomic
def token_update(
    *, token: Token, is_active: bool | None = None, max_requests: int | None = None, ctx: AuditContext | None = None
) -> Token:
    """Revoke/reactivate a token or change its quota (`max_requests=0` means unlimited)."""
    validate_max_requests(max_requests)
    if is_active is None and max_requests is None:
        raise ServiceError("no fields to update")
    details: dict = {}
    if is_active is not None:
        token.is_active = is_active
        token.deactivated_at = None if is_active else (token.deactivated_at or timezone.now())
        details["updated_is_active"] = is_active
    if max_requests is not None:
        token.max_requests = max_requests or None
        details["updated_max_requests"] = max_requests or "unlimited"
    token.save(update_fields=["is_active", "deactivated_at", "max_requests"])
    audit_log("token.update", "success", ctx, project_id=token.project_id, token_id=str(token.id), details=details)
    _invalidate(token)
    return token


@transaction.atomic
def token_revoke(*, token: Token, ctx: AuditContext | None = None) -> bool:
    """Revoke a token (idempotent). Returns False when it was already revoked."""
    already = not token.is_active
    if not already:
        token.is_active = False
        token.deactivated_at = timezone.now()
        token.save(update_fields=["is_active", "deactivated_at"])
        _invalidate(token)
    details = {"already_revoked": True} if already else {}
    audit_log("token.revoke", "success", ctx, project_id=token.project_id, token_id=str(token.id), details=details)
    return not already


def _invalidate(token: Token) -> None:
    token_hash = token.token_hash
    transaction.on_commit(lambda: invalidation.token_changed(token_hash))
