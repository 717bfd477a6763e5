"""The token check of /v1: format, SHA-256 lookup, active, expiry, quota (reference §3.2, §3.7, §4).

Validated tokens and projects (active flag, decrypted upstream key) are cached in-process, so the common
request makes no database query. Entries live up to TOKEN_CACHE_TTL / LLM_PROXY_API_KEY_CACHE_TTL, but
changes reach them sooner: services call llmproxy.proxy.invalidation after commit, which clears them here
and, with Redis configured, in every other web process. While that channel is down, entries are trusted
for one second only.

The check is split for the HTTP cache (contract 5): `avalidate_token` (no counting) and `aproject_guard`
come before the cache lookup; `acount_request` only for requests that go upstream. Limited tokens are
counted by one guarded UPDATE (no overshoot under concurrency); unlimited ones in batches (usage.py).
"""

import itertools
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import F, Q
from django.utils import timezone

from audit.logger import ACTOR_SYSTEM, AuditContext, aaudit_log, client_ip, obfuscate_id
from projects import crypto
from tokens.models import format_error, hash_token

from . import errors, invalidation, state, usage

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CachedToken:
    token_id: str
    project_id: str
    expires_at: float | None  # epoch seconds
    max_requests: int | None  # None: unlimited
    loaded: float  # time.monotonic() when read from the database
    exhausted: bool = False  # the guarded UPDATE found the quota used up


@dataclass(slots=True)
class CachedProject:
    is_active: bool
    api_key: str | None  # None: the stored key cannot be decrypted
    loaded: float


_tokens: dict[str, CachedToken] = {}  # by token hash
_projects: dict[str, CachedProject] = {}  # by project id
# Bumped by every invalidation: a database read that raced with one must not be cached.
_generations = itertools.count(1)
_generation = 0


async def avalidate_token(authorization: str) -> CachedToken:
    """The token of this Authorization header, valid now; raises ProxyError (401/429/503). Counts nothing."""
    token = bearer_token(authorization)
    problem = format_error(token)
    if problem:
        raise errors.invalid_token(problem)
    token_hash = hash_token(token)
    entry = _tokens.get(token_hash)
    if entry is None or not _fresh(entry.loaded, settings.TOKEN_CACHE_TTL):
        entry = await _aload_token(token_hash)
    if entry.expires_at is not None and time.time() > entry.expires_at:
        raise errors.token_expired()
    if entry.exhausted:
        raise errors.rate_limited()
    return entry


async def aproject_guard(entry: CachedToken, request) -> CachedProject:
    """The token's project, refused with 403 when inactive (audited) or 503 when it cannot be read."""
    project = _projects.get(entry.project_id)
    if project is None or not _fresh(project.loaded, settings.LLM_PROXY_API_KEY_CACHE_TTL):
        try:
            project = await _aload_project(entry.project_id)
        except errors.ProxyError:
            await _audit(request, entry, "error", "service_unavailable")
            raise
    if not project.is_active and settings.LLM_PROXY_ENFORCE_PROJECT_ACTIVE:
        await _audit(request, entry, "denied", "project_inactive")
        raise errors.project_inactive()
    return project


async def acount_request(entry: CachedToken) -> None:
    """Count one upstream request against the token: batched when unlimited, guarded UPDATE when limited."""
    if entry.max_requests is None:
        usage.record_request(entry.token_id)
        return
    if await _adb(_increment_limited, entry.token_id):
        return
    # Zero rows: the database disagrees with the cache. Find out why and answer like the reference.
    row = await _adb(_select_token, {"id": entry.token_id})
    token_hash = row[-1] if row else None
    if row is None or not row[2]:
        _forget_entry(entry)
        raise errors.token_inactive() if row else errors.token_not_found()
    if row[3] is not None and timezone.now() > row[3]:
        raise errors.token_expired()
    if row[5] is None:  # made unlimited meanwhile
        entry.max_requests = None
        usage.record_request(entry.token_id)
        return
    entry.exhausted = True
    if token_hash in _tokens and _tokens[token_hash] is not entry:
        _tokens[token_hash].exhausted = True
    raise errors.rate_limited()


def upstream_key(project: CachedProject) -> str:
    if project.api_key is None:
        raise errors.upstream_auth_error()
    return project.api_key


def bearer_token(header: str) -> str:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive, token trimmed)."""
    scheme, space, token = header.partition(" ")
    token = token.strip()
    if not space or scheme.lower() != "bearer" or not token:
        raise errors.invalid_token("missing or invalid authorization header")
    return token


# --- cache invalidation (called by llmproxy.proxy.invalidation) -------------------------------------


def forget_token(token_hash: str) -> None:
    global _generation
    _generation = next(_generations)
    _tokens.pop(token_hash, None)


def forget_project(project_id: str) -> None:
    global _generation
    _generation = next(_generations)
    _projects.pop(str(project_id), None)


@state.on_reset
def forget_all() -> None:
    global _generation
    _generation = next(_generations)
    _tokens.clear()
    _projects.clear()


def _forget_entry(entry: CachedToken) -> None:
    for token_hash, cached in list(_tokens.items()):
        if cached.token_id == entry.token_id:
            forget_token(token_hash)


# --- database ------------------------------------------------------------------------------------------


async def _aload_token(token_hash: str) -> CachedToken:
    generation = _generation
    row = await _adb(_select_token, {"token_hash": token_hash})
    if row is None:
        raise errors.token_not_found()
    token_id, project_id, is_active, expires_at, request_count, max_requests, project_active, stored_key, _ = row
    if not is_active:
        raise errors.token_inactive()
    now = time.monotonic()
    entry = CachedToken(
        token_id=str(token_id),
        project_id=str(project_id),
        expires_at=expires_at.timestamp() if expires_at else None,
        max_requests=max_requests or None,
        loaded=now,
        exhausted=bool(max_requests) and request_count >= max_requests,
    )
    if generation == _generation:  # no invalidation raced with this read
        _remember(_tokens, token_hash, entry, settings.TOKEN_CACHE_MAX)
        _remember(
            _projects,
            entry.project_id,
            _project_entry(project_active, stored_key, now),
            settings.LLM_PROXY_API_KEY_CACHE_MAX,
        )
    return entry


async def _aload_project(project_id: str) -> CachedProject:
    from projects.models import Project

    generation = _generation
    row = await _adb(
        lambda: Project.objects.filter(id=project_id).values_list("is_active", "api_key_encrypted").first()
    )
    if row is None:
        raise errors.service_unavailable()
    project = _project_entry(row[0], row[1], time.monotonic())
    if generation == _generation:
        _remember(_projects, project_id, project, settings.LLM_PROXY_API_KEY_CACHE_MAX)
    return project


def _project_entry(is_active: bool, stored_key: str, loaded: float) -> CachedProject:
    try:
        api_key = crypto.decrypt(stored_key)
    except crypto.DecryptionError:
        logger.error("the upstream API key of a project cannot be decrypted with the configured ENCRYPTION_KEY")
        api_key = None
    return CachedProject(is_active=is_active, api_key=api_key, loaded=loaded)


def _select_token(lookup: dict):
    from tokens.models import Token

    fields = (
        "id",
        "project_id",
        "is_active",
        "expires_at",
        "request_count",
        "max_requests",
        "project__is_active",
        "project__api_key_encrypted",
        "token_hash",
    )
    return Token.objects.filter(**lookup).values_list(*fields).first()


def _increment_limited(token_id: str) -> bool:
    from tokens.models import Token

    now = timezone.now()
    guarded = Token.objects.filter(id=token_id, is_active=True, request_count__lt=F("max_requests")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    return guarded.update(request_count=F("request_count") + 1, last_used_at=now) == 1


def _in_db_thread(fn, *args):
    db_hygiene()
    return fn(*args)


def db_hygiene() -> None:
    """What request_started/finished do for Django's requests (/v1 has neither): drop a connection that
    failed or outlived CONN_MAX_AGE. A healthy SQLite connection is kept: this thread is long-lived and
    reopening a WAL database costs a checkpoint each time."""
    for conn in connections.all(initialized_only=True):
        if conn.vendor != "sqlite" or conn.errors_occurred:
            conn.close_if_unusable_or_obsolete()


_run_in_db_thread = sync_to_async(_in_db_thread)  # asgiref's one shared thread: its connection persists


async def _adb(fn, *args):
    try:
        return await _run_in_db_thread(fn, *args)
    except DatabaseError:
        logger.exception("database error during the token check")
        raise errors.service_unavailable() from None


# --- helpers ---------------------------------------------------------------------------------------------


def _fresh(loaded: float, ttl: float) -> bool:
    if not invalidation.is_trusted():
        ttl = min(ttl, 1.0)
    return time.monotonic() - loaded < ttl


def _remember(cache: dict, key: str, value, limit: int) -> None:
    if limit <= 0:
        return
    if key not in cache and len(cache) >= limit:
        cache.pop(next(iter(cache)), None)  # oldest first
    cache[key] = value


async def _audit(request, entry: CachedToken, outcome: str, reason: str) -> None:
    ctx = AuditContext(
        actor=ACTOR_SYSTEM,
        request_id=getattr(request, "proxy_request_id", ""),
        client_ip=client_ip(request.META),
        method=request.method,
        path=request.path,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    details = {"reason": reason, "token_id": obfuscate_id(entry.token_id)}
    await aaudit_log(
        "proxy_request",
        outcome,
        ctx,
        project_id=entry.project_id,
        token_id=entry.token_id,
        reason=reason,
        details=details,
    )
