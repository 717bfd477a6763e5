"""The response cache's rules as pure functions (the reference's cache): keys, Cache-Control, TTL, conditionals.

Nothing here does I/O, so every rule is unit-tested without a server; `cache.py` applies them to requests.
"""

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from django.utils.http import parse_http_date_safe

LOOKUP_HEADERS = ("Accept", "Accept-Encoding", "Accept-Language")
CACHEABLE_STATUSES = {200, 203}  # the reference's {200,203,301,308,404,410}, minus the non-2xx it never stores
MAX_HASHED_BODY = 1024 * 1024  # an opted-in POST body above this is not hashed, hence not cached (reference)

# Never stored (reference cache_helpers.go:253-285), plus what must come from the current request (X-Request-ID
# and CORS: a hit must not replay another request's) and what the cache itself computes on every answer.
UNSTORED_HEADERS = {
    name.lower()
    for name in """
    Connection Keep-Alive Proxy-Authenticate Proxy-Authorization TE Trailers Transfer-Encoding Upgrade
    X-Upstream-Request-Start X-Upstream-Request-Stop X-Proxy-Received-At X-Proxy-Final-Response-At
    X-Proxy-First-Response-At Date Set-Cookie
    X-Request-ID Access-Control-Allow-Origin Access-Control-Expose-Headers Access-Control-Allow-Credentials
    Age Cache-Status X-PROXY-CACHE X-PROXY-CACHE-KEY X-CACHE-DEBUG Content-Length
    """.split()
}


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# --- Cache-Control ------------------------------------------------------------------------------


def parse_cache_control(value: str) -> dict[str, str]:
    """Directives of a Cache-Control value, lower-cased names; flag directives map to ""."""
    directives: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.partition("=")
        name = name.strip().lower()
        if name:
            directives[name] = arg.strip().strip('"')
    return directives


def seconds(directives: dict[str, str], name: str) -> int:
    """A delta-seconds directive as an int; absent, malformed or negative is 0."""
    try:
        return max(0, int(directives.get(name) or 0))
    except ValueError:
        return 0


def client_ttl(directives: dict[str, str]) -> int:
    """The client's opt-in TTL: `public` with `s-maxage` (wins) or `max-age` > 0 (as the reference)."""
    if "public" not in directives:
        return 0
    return seconds(directives, "s-maxage") or seconds(directives, "max-age")


def wants_revalidation(directives: dict[str, str]) -> bool:
    return "no-cache" in directives or directives.get("max-age") == "0"


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """What a request's own Cache-Control asks of the cache."""

    no_store: bool
    revalidate: bool
    client_ttl: int
    ttl_suffix: str


@functools.lru_cache(maxsize=1024)
def request_policy(cache_control: str) -> RequestPolicy:
    """Parsed once per distinct value: clients send the same few Cache-Control values over and over."""
    directives = parse_cache_control(cache_control)
    return RequestPolicy(
        no_store="no-store" in directives,
        revalidate=wants_revalidation(directives),
        client_ttl=client_ttl(directives),
        ttl_suffix=ttl_suffix(directives),
    )


def shareable(directives: dict[str, str]) -> bool:
    """Requests to /v1 carry Authorization, so only `public` or `s-maxage` answers may be shared."""
    return "public" in directives or seconds(directives, "s-maxage") > 0


# --- Keys ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def base_key(method: str, path: str, query_string: str) -> str:
    grouped: dict[str, list[str]] = defaultdict(list)
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        grouped[name].append(value)
    query = "".join(f"{name}={','.join(sorted(values))}&" for name, values in sorted(grouped.items()))
    return sha256_hex(f"{method}|{path}|{query}")


def header_part(names: Iterable[str], get: Callable[[str], str]) -> str:
    return "".join(f"{name.lower()}:{value.strip()}|" for name in names if (value := get(name)))


def cache_key(
    method: str, path: str, query_string: str, get: Callable[[str], str], *, body_hash: str = "", ttl_suffix: str = ""
) -> str:
    """The reference's key: sha256(base + Accept* values) [+ "|body=<sha256>"] [+ "|ttl=..."]."""
    key = sha256_hex(base_key(method, path, query_string) + header_part(LOOKUP_HEADERS, get))
    if body_hash:
        key += "|body=" + body_hash
    return key + ttl_suffix


def ttl_suffix(directives: dict[str, str]) -> str:
    """`|ttl=smax=N` or `|ttl=max=N` for opted-in POSTs, so different client TTLs are different entries."""
    if "public" not in directives:
        return ""
    if smax := seconds(directives, "s-maxage"):
        return f"|ttl=smax={smax}"
    if maxage := seconds(directives, "max-age"):
        return f"|ttl=max={maxage}"
    return ""


def vary_names(vary: str) -> list[str]:
    """Canonical, sorted header names of a Vary value (as the reference's key uses them)."""
    return sorted(
        {"-".join(p.capitalize() for p in name.strip().split("-")) for name in vary.split(",") if name.strip()}
    )


def vary_key(vary: str, get: Callable[[str], str]) -> str:
    """A digest of the request's values of the Vary headers ("" without Vary); digested so no secret is stored."""
    if not vary.strip() or vary.strip() == "*":
        return ""
    return sha256_hex(header_part(vary_names(vary), get))


# --- Storing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreDecision:
    ttl: int  # seconds to keep the answer; 0 = do not store
    forced: bool = False  # the TTL came from the client's opt-in, not the response
    reason: str = ""  # why not stored, for X-CACHE-DEBUG


def response_ttl(directives: dict[str, str], default_ttl: int) -> int:
    """TTL the response grants: s-maxage, else max-age, else HTTP_CACHE_DEFAULT_TTL for a bare `public`."""
    if "no-store" in directives:
        return 0
    if "s-maxage" in directives or "max-age" in directives:
        return seconds(directives, "s-maxage") or seconds(directives, "max-age")
    return default_ttl if "public" in directives else 0


def store_decision(
    *,
    status: int,
    response_cc: str,
    vary: str,
    is_stream: bool,
    forced_ttl: int,
    default_ttl: int,
    stream_caching: bool,
    request_no_store: bool = False,
) -> StoreDecision:
    """How long (if at all) to keep an upstream answer (the reference's rules, except that
    HTTP_CACHE_DEFAULT_TTL applies and a truncated stream is never kept)."""
    if not 200 <= status < 300:
        return StoreDecision(0, reason="status-not-cacheable")
    if request_no_store:
        return StoreDecision(0, reason="request-no-store")
    if is_stream and not stream_caching:
        return StoreDecision(0, reason="streaming-response")
    directives = parse_cache_control(response_cc)
    private = "no-store" in directives or "private" in directives
    if vary.strip() == "*":
        return StoreDecision(0, reason="vary-star")
    if ttl := response_ttl(directives, default_ttl):
        # the response set a lifetime: it decides alone, a non-shareable answer is not stored at all
        if private or status not in CACHEABLE_STATUSES or not shareable(directives):
            return StoreDecision(0, reason="not-cacheable")
        return StoreDecision(ttl)
    if forced_ttl and not private and status != 206:
        return StoreDecision(forced_ttl, forced=True)
    return StoreDecision(0, reason="ttl-zero")


def stored_headers(headers: Iterable[tuple[str, str]], decision: StoreDecision) -> dict[str, list[str]]:
    """The headers kept with an entry; a forced entry says `Cache-Control: public, max-age=<ttl>`."""
    kept: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() not in UNSTORED_HEADERS:
            kept.setdefault(name, []).append(value)
    if decision.forced:
        kept = {k: v for k, v in kept.items() if k.lower() != "cache-control"}
        kept["Cache-Control"] = [f"public, max-age={decision.ttl}"]
    return kept


# --- Conditional requests -------------------------------------------------------------------------


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def not_modified(if_none_match: str, if_modified_since: str, etag: str, last_modified: str) -> bool:
    """True when the client's copy is current: If-None-Match (weak compare, `*`), else If-Modified-Since."""
    if if_none_match:
        tags = [t.strip() for t in if_none_match.split(",") if t.strip()]
        return any(t == "*" or (etag and _opaque(t) == _opaque(etag)) for t in tags)
    if if_modified_since and last_modified:
        since, modified = parse_http_date_safe(if_modified_since), parse_http_date_safe(last_modified)
        return since is not None and modified is not None and modified <= since
    return False
