"""Purging the response cache: shared by `POST /manage/cache/purge` and `manage.py cache_purge`, as
the reference's purge endpoint does."""

import re
from urllib.parse import unquote

from django.conf import settings

from audit.services import AuditContext, audit_log

from . import cache_rules as rules
from . import state

# A valid purge URL: no control characters, every `%` starts an escape (what Go's url.Parse insists on here).
URL_PATTERN = r"^(?:[^%\x00-\x1f\x7f]|%[0-9A-Fa-f]{2})+$"
_VALID_URL = re.compile(URL_PATTERN)
_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)")
# The host part of an authority as Go's url.Parse accepts it: an IP literal in brackets, or a name without
# brackets, either followed by an optional numeric port. `http://[::1` or `http://host:port` is no URL.
_HOST_PORT = re.compile(r"^(?:\[[^\[\]]*\]|[^\[\]:]*)(?::[0-9]*)?$")


class PurgeError(Exception):
    """A purge the caller must fix (or that the backend could not do); `reason` goes to the audit log."""

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


def purge_key(method: str, url: str) -> str:
    """The key an exact purge deletes: the request `method url` with no headers and no body (reference)."""
    path, query = _split_url(url)
    method = method.strip().upper()
    return rules.cache_key("GET" if method == "HEAD" else method, path, query, lambda name: "")


def cache_purge(*, method: str, url: str, prefix: str = "", ctx: AuditContext | None = None) -> dict[str, object]:
    """Delete one request's entry in every project (`{"deleted": bool}`) or every key starting with `prefix`
    (`{"deleted": n}`)."""
    if not settings.HTTP_CACHE_ENABLED:
        raise purge_failed(ctx, PurgeError("caching is disabled", reason="caching_disabled"))
    if not method or not url:
        raise purge_failed(ctx, PurgeError("method and url are required", reason="missing_fields"))
    try:
        key = purge_key(method, url)
    except ValueError:
        raise purge_failed(ctx, PurgeError("invalid URL", reason="invalid_url")) from None
    try:
        backend = state.runtime().cache.get()
        if prefix:
            deleted = backend.purge(prefix, prefix=True)
            details = {"purge_type": "prefix", "prefix": prefix, "deleted": deleted}
        else:
            deleted = backend.purge(key) > 0
            details = {"purge_type": "exact", "method": method, "url": url, "cache_key": key, "deleted": deleted}
    except Exception as exc:  # Redis unreachable and the like: the operator must know nothing was purged
        error = PurgeError("cache backend unavailable", reason="backend_error", status=503)
        raise purge_failed(ctx, error, error_text=type(exc).__name__) from exc
    audit_log("cache.purge", "success", ctx, details=details)
    return {"deleted": deleted}


def purge_failed(ctx: AuditContext | None, error: PurgeError, *, error_text: str = "") -> PurgeError:
    """Audit a refused purge and hand the error back for raising."""
    details = {"reason": error.reason}
    if error_text:
        details["error"] = error_text
    audit_log("cache.purge", "failure", ctx, reason=error.reason, details=details)
    return error


def _split_url(url: str) -> tuple[str, str]:
    """Path (decoded, as the proxy sees it) and raw query of `url` (absolute or a path); ValueError if invalid."""
    if not _VALID_URL.match(url):
        raise ValueError(url)
    authority = _AUTHORITY.match(url)
    if authority and not _HOST_PORT.match(authority.group(1).rpartition("@")[2]):
        raise ValueError(url)
    rest = url[authority.end() if authority else 0 :].split("#", 1)[0]
    path, _, query = rest.partition("?")
    return unquote(path), query
