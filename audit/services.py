"""The audit service: every security-relevant operation goes to the database and to AUDIT_LOG_FILE (JSONL).

`audit_log` writes one event; `audited` is the skeleton the management views share (a failure event when
the block raises an error that carries audit details, a success event on request). The database row is
part of the caller's transaction and the file line is written when that transaction commits, so a
rollback leaves neither.
"""

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from llmproxy import clientip

from .models import AuditEvent

logger = logging.getLogger(__name__)
_file_lock = threading.Lock()

ACTOR_MANAGEMENT_API = "management_api"
ACTOR_SYSTEM = "system"
ACTOR_ADMIN_PREFIX = "admin:"


@dataclass
class AuditContext:
    """Who did something and through which request; built once per request by the entry point."""

    actor: str = ACTOR_SYSTEM
    request_id: str = ""
    correlation_id: str = ""
    client_ip: str = ""
    method: str = ""
    path: str = ""
    user_agent: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_request(cls, request, actor: str = ACTOR_MANAGEMENT_API) -> "AuditContext":
        meta = request.META
        extra = {}
        if meta.get("HTTP_X_FORWARDED_REFERER"):
            extra["referer"] = meta["HTTP_X_FORWARDED_REFERER"]
        if meta.get("HTTP_X_ADMIN_ORIGIN") == "1":
            extra["origin"] = "admin-ui"
        return cls(
            actor=actor,
            request_id=getattr(request, "request_id", "") or meta.get("HTTP_X_REQUEST_ID", ""),
            correlation_id=getattr(request, "correlation_id", ""),
            client_ip=client_ip(meta),
            method=request.method or "",
            path=request.path,
            user_agent=meta.get("HTTP_X_FORWARDED_USER_AGENT") or meta.get("HTTP_USER_AGENT", ""),
            extra=extra,
        )

    @classmethod
    def from_admin(cls, request) -> "AuditContext":
        """A change made in the Django admin: the admin user is the actor."""
        return cls.from_request(request, actor=f"{ACTOR_ADMIN_PREFIX}{request.user.get_username()}")


def client_ip(meta: dict) -> str:
    """The client address of a request's META: forwarded headers count only from TRUSTED_PROXIES."""
    return clientip.client_ip(meta)


def obfuscate_id(value: str | uuid.UUID) -> str:
    """The reference's generic obfuscation for ids in audit details: first 8 + ... + last 4."""
    value = str(value)
    return value if len(value) <= 12 else value[:8] + "..." + value[-4:]


def audit_log(
    action: str,
    outcome: str,
    ctx: AuditContext | None = None,
    *,
    project_id: str | uuid.UUID = "",
    token_id: str | uuid.UUID = "",
    reason: str = "",
    details: dict | None = None,
) -> AuditEvent | None:
    """Record one audit event (database row and JSONL line). Never raises: auditing must not break the operation.

    Inside a transaction the row is written in a savepoint of it and the line when it commits; outside
    one, both at once.
    """
    if not settings.AUDIT_ENABLED:
        return None
    ctx = ctx or AuditContext()
    meta = {**ctx.extra, **(details or {})}
    if ctx.method:
        meta.setdefault("http_method", ctx.method)
    if ctx.path:
        meta.setdefault("endpoint", ctx.path)
    if ctx.user_agent:
        meta.setdefault("user_agent", ctx.user_agent)
    event = AuditEvent(
        id=uuid.uuid4(),
        timestamp=timezone.now(),
        action=action,
        actor=ctx.actor,
        project_id=str(project_id or ""),
        request_id=ctx.request_id,
        correlation_id=ctx.correlation_id,
        client_ip=ctx.client_ip,
        method=ctx.method,
        path=ctx.path[:2048],
        user_agent=ctx.user_agent[:1024],
        outcome=outcome,
        reason=reason or str(meta.get("error", "") or meta.get("reason", "")),
        token_id=str(token_id or ""),
        metadata=meta,
    )
    # The line is made now, before the row's values are cut to their columns: the file keeps them whole.
    line = json.dumps(event_as_json(event), default=str) + "\n"
    _after_commit(partial(_append_to_file, line, settings.AUDIT_LOG_FILE))
    if settings.AUDIT_STORE_IN_DB:
        _fit_columns(event)
        try:
            # A savepoint: when the insert fails inside the caller's transaction (a service's), only the
            # audit row is rolled back; without it PostgreSQL would abort, and silently lose, the whole write.
            with transaction.atomic():
                event.save(force_insert=True)
        except Exception:
            logger.warning("audit event %s could not be stored in the database", action, exc_info=True)
    return event


def audit_log_update(event: AuditEvent, details: dict) -> None:
    """Merge `details` into a recorded event's metadata: its row is updated and its line written again.

    For coalesced events (a count filled in later); the file is append-only, so it gets a second line with
    the same timestamp, action and client IP, and the last one holds the total. Never raises.
    """
    if not settings.AUDIT_ENABLED:
        return
    event.metadata = {**event.metadata, **details}
    line = json.dumps(event_as_json(event), default=str) + "\n"
    _after_commit(partial(_append_to_file, line, settings.AUDIT_LOG_FILE))
    if settings.AUDIT_STORE_IN_DB:
        try:
            AuditEvent.objects.filter(id=event.id).update(metadata=event.metadata)
        except Exception:
            logger.warning("audit event %s could not be updated in the database", event.action, exc_info=True)


def _fit_columns(event: AuditEvent) -> None:
    """Client-supplied values (X-Request-ID, X-Forwarded-For, ids from URLs) cut to their columns, NULs dropped."""
    for column in AuditEvent._meta.concrete_fields:
        value = getattr(event, column.attname)
        if isinstance(value, str):
            value = value.replace("\x00", "")
            setattr(event, column.attname, value[: column.max_length] if column.max_length else value)


async def aaudit_log(*args, **kwargs) -> AuditEvent | None:
    return await sync_to_async(audit_log)(*args, **kwargs)


def event_as_json(event: AuditEvent) -> dict:
    """The reference's JSONL line: timestamp, action, actor, result, the non-empty ids, then `details`."""
    line = {
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "action": event.action,
        "actor": event.actor,
        "result": event.outcome,
    }
    for key in ("project_id", "request_id", "correlation_id", "client_ip"):
        if getattr(event, key):
            line[key] = getattr(event, key)
    if event.metadata:
        line["details"] = event.metadata
    return line


def _after_commit(write: Callable[[], None]) -> None:
    """Run `write` when the caller's transaction commits (never, if it rolls back), or now outside one.

    Decided by `in_atomic_block` rather than by `transaction.on_commit` alone, which opens a connection
    to ask about autocommit: when the database is what failed, the line must still be written.
    """
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(write)
    else:
        write()


def _append_to_file(line: str, path: str) -> None:
    if not path:
        return
    try:
        if settings.AUDIT_CREATE_DIR:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _file_lock, open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        logger.warning("audit log file %s is not writable", path, exc_info=True)


class AuditedOperation:
    """One audited operation: see `audited`."""

    def __init__(self, ctx: AuditContext, action: str, *, project_id: str = "", token_id: str = "") -> None:
        self.ctx, self.action = ctx, action
        self.project_id, self.token_id = project_id, token_id

    def __enter__(self) -> "AuditedOperation":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Errors a caller can cause carry `audit_details` (a service's ServiceError, the API's APIError);
        # None there means "not audited" (the reference audits some failures only, or the service did).
        details = getattr(exc, "audit_details", None)
        if details is not None:
            self.failure(details)

    def failure(self, details: dict) -> AuditEvent | None:
        return audit_log(
            self.action, "failure", self.ctx, project_id=self.project_id, token_id=self.token_id, details=details
        )

    def success(self, details: dict | None = None) -> AuditEvent | None:
        return audit_log(
            self.action, "success", self.ctx, project_id=self.project_id, token_id=self.token_id, details=details
        )


def audited(ctx: AuditContext, action: str, *, project_id: str = "", token_id: str = "") -> AuditedOperation:
    """The audit skeleton of an operation, shared by the management views and the admin.

    Used as `with audited(ctx, "token.update", token_id=...) as op:`, an error raised in the block that
    carries audit details is recorded as a failure of `action` (and raised on); `op.success(details)`
    records the success. `op.project_id` / `op.token_id` can be filled in as they become known.
    """
    return AuditedOperation(ctx, action, project_id=project_id, token_id=token_id)
