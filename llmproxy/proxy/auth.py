"""The token check of /v1: format, SHA-256 lookup, active, expiry, quota (as the reference's token
validation and request counting do, with the error answers of errors.py).

Validated tokens and projects (active flag, decrypted upstream key) are cached in-process by `TokenCache`
and `ProjectKeyCache`, so the common request makes no database query. Entries live up to TOKEN_CACHE_TTL /
LLM_PROXY_API_KEY_CACHE_TTL, but changes reach them sooner: services call llmproxy.proxy.invalidation after
commit, which clears them here, bumps the shared generation that every web process polls twice a second
(generation.py) and, with Redis configured, publishes the change to the other processes at once. While the
generation cannot be read, entries are trusted for one second only (`Freshness`).

The check is split for the HTTP cache, which must not count a request it answers: `TokenCache.avalidate`
(no counting) and `ProjectKeyCache.aguard` come before the cache lookup; `TokenCache.acount` only for
requests that go upstream. Limited tokens are counted by one guarded UPDATE (no overshoot under
concurrency); unlimited ones in batches (usage.py).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F, Q
from django.utils import timezone

from audit.services import ACTOR_SYSTEM, AuditContext, aaudit_log, client_ip, obfuscate_id
from projects import crypto
from tokens.models import format_error, hash_token

from . import errors
from .db import DbThread
from .usage import UsageBatcher

logger = logging.getLogger(__name__)
T = TypeVar("T")
V = TypeVar("V")

TokenRow = tuple[Any, ...]  # the columns of _TOKEN_FIELDS


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


class Freshness:
    """How far the caches may trust their entries, shared by both caches, the invalidation listener and the
    generation watch (generation.py).

    `generation` is bumped by every invalidation: a database read that raced with one must not be cached.
    `confirmed` is when the last successful read of the shared generation started: every change committed
    before it has reached the caches. Entries live their full TTL while that read is under `TRUST_SECONDS`
    old; otherwise (the generation unreadable: database or Redis down, or not yet read) one second at most.
    `listening` is whether the Redis listener is subscribed (pub/sub, the fast path; trust does not need it).
    """

    TRUST_SECONDS = 1.0

    def __init__(self) -> None:
        self.generation = 0
        self.confirmed = float("-inf")  # time.monotonic() of the last successful generation read's start
        self.listening = False

    def bump(self) -> None:
        self.generation += 1

    def confirm(self, started: float) -> None:
        self.confirmed = max(self.confirmed, started)

    def trusted(self) -> bool:
        """Whether entries can live their full TTL: the shared generation was read less than a second ago."""
        return time.monotonic() - self.confirmed < self.TRUST_SECONDS

    def fresh(self, loaded: float, ttl: float) -> bool:
        if not self.trusted():
            ttl = min(ttl, 1.0)
        return time.monotonic() - loaded < ttl


async def adb(db: DbThread, fn: Callable[..., T], *args: object) -> T:
    """Run a query of the token check in the database thread; a database error is the client's 503."""
    try:
        return await db.arun(fn, *args)
    except DatabaseError:
        logger.exception("database error during the token check")
        raise errors.service_unavailable() from None


class ProjectKeyCache:
    """Projects by id: active flag and decrypted upstream key, refreshed after LLM_PROXY_API_KEY_CACHE_TTL."""

    def __init__(self, db: DbThread, freshness: Freshness) -> None:
        self._db = db
        self._freshness = freshness
        self._projects: dict[str, CachedProject] = {}

    async def aguard(self, entry: CachedToken, request: Any) -> CachedProject:
        """The token's project, refused with 403 when inactive (audited) or 503 when it cannot be read."""
        project = self._projects.get(entry.project_id)
        if project is None or not self._freshness.fresh(project.loaded, settings.LLM_PROXY_API_KEY_CACHE_TTL):
            try:
                project = await self._aload(entry.project_id)
            except errors.ProxyError:
                await _audit(request, entry, "error", "service_unavailable")
                raise
        if not project.is_active and settings.LLM_PROXY_ENFORCE_PROJECT_ACTIVE:
            await _audit(request, entry, "denied", "project_inactive")
            raise errors.project_inactive()
        return project

    def remember(self, project_id: str, project: CachedProject) -> None:
        _remember(self._projects, project_id, project, settings.LLM_PROXY_API_KEY_CACHE_MAX)

    def forget(self, project_id: str) -> None:
        self._freshness.bump()
        self._projects.pop(str(project_id), None)

    def clear(self) -> None:
        self._freshness.bump()
        self._projects.clear()

    async def _aload(self, project_id: str) -> CachedProject:
        generation = self._freshness.generation
        row = await adb(self._db, _select_project, project_id)
        if row is None:
            raise errors.service_unavailable()
        project = project_entry(row[0], row[1], time.monotonic())
        if generation == self._freshness.generation:
            self.remember(project_id, project)
        return project


class TokenCache:
    """Validated tokens by hash; loading one also caches its project (one query for both)."""

    def __init__(self, db: DbThread, projects: ProjectKeyCache, usage: UsageBatcher, freshness: Freshness) -> None:
        self._db = db
        self._projects = projects
        self._usage = usage
        self._freshness = freshness
        self._tokens: dict[str, CachedToken] = {}  # by token hash

    async def avalidate(self, authorization: str) -> CachedToken:
        """The token of this Authorization header, valid now; raises ProxyError (401/429/503). Counts nothing."""
        token = bearer_token(authorization)
        problem = format_error(token)
        if problem:
            raise errors.invalid_token(problem)
        token_hash = hash_token(token)
        entry = self._tokens.get(token_hash)
        if entry is None or not self._freshness.fresh(entry.loaded, settings.TOKEN_CACHE_TTL):
            entry = await self._aload(token_hash)
        if entry.expires_at is not None and time.time() > entry.expires_at:
            raise errors.token_expired()
        if entry.exhausted:
            raise errors.rate_limited()
        return entry

    async def acount(self, entry: CachedToken) -> None:
        """Count one upstream request against the token: batched when unlimited, guarded UPDATE when limited."""
        if entry.max_requests is None:
            self._usage.record_request(entry.token_id)
            return
        if await adb(self._db, _increment_limited, entry.token_id):
            return
        # Zero rows: the database disagrees with the cache. Find out why and answer like the reference.
        row = await adb(self._db, _select_token, {"id": entry.token_id})
        if row is None or not row[2]:
            self._forget_entry(entry)
            raise errors.token_inactive() if row else errors.token_not_found()
        if row[3] is not None and timezone.now() > row[3]:
            raise errors.token_expired()
        if row[5] is None:  # made unlimited meanwhile
            entry.max_requests = None
            self._usage.record_request(entry.token_id)
            return
        entry.exhausted = True
        cached = self._tokens.get(row[-1])
        if cached is not None and cached is not entry:
            cached.exhausted = True
        raise errors.rate_limited()

    def forget(self, token_hash: str) -> None:
        self._freshness.bump()
        self._tokens.pop(token_hash, None)

    def clear(self) -> None:
        self._freshness.bump()
        self._tokens.clear()

    def _forget_entry(self, entry: CachedToken) -> None:
        for token_hash, cached in list(self._tokens.items()):
            if cached.token_id == entry.token_id:
                self.forget(token_hash)

    async def _aload(self, token_hash: str) -> CachedToken:
        generation = self._freshness.generation
        row = await adb(self._db, _select_token, {"token_hash": token_hash})
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
        if generation == self._freshness.generation:  # no invalidation raced with this read
            _remember(self._tokens, token_hash, entry, settings.TOKEN_CACHE_MAX)
            self._projects.remember(entry.project_id, project_entry(project_active, stored_key, now))
        return entry


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


def project_entry(is_active: bool, stored_key: str, loaded: float) -> CachedProject:
    try:
        api_key = crypto.decrypt(stored_key)
    except crypto.DecryptionError:
        logger.error("the upstream API key of a project cannot be decrypted with the configured ENCRYPTION_KEY")
        api_key = None
    return CachedProject(is_active=is_active, api_key=api_key, loaded=loaded)


# --- database (these run in the database thread) -------------------------------------------------------

_TOKEN_FIELDS = (
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


def _select_token(lookup: dict[str, str]) -> TokenRow | None:
    from tokens.models import Token

    row: TokenRow | None = Token.objects.filter(**lookup).values_list(*_TOKEN_FIELDS).first()
    return row


def _select_project(project_id: str) -> tuple[bool, str] | None:
    from projects.models import Project

    row: tuple[bool, str] | None = (
        Project.objects.filter(id=project_id).values_list("is_active", "api_key_encrypted").first()
    )
    return row


def _increment_limited(token_id: str) -> bool:
    from tokens.models import Token

    now = timezone.now()
    guarded = Token.objects.filter(id=token_id, is_active=True, request_count__lt=F("max_requests")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    return guarded.update(request_count=F("request_count") + 1, last_used_at=now) == 1


# --- helpers ---------------------------------------------------------------------------------------------


def _remember(cache: dict[str, V], key: str, value: V, limit: int) -> None:
    if limit <= 0:
        return
    if key not in cache and len(cache) >= limit:
        cache.pop(next(iter(cache)), None)  # oldest first
    cache[key] = value


async def _audit(request: Any, entry: CachedToken, outcome: str, reason: str) -> None:
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
