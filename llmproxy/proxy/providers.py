"""The upstream provider served by this process, from API_CONFIG_PATH (the reference's api_providers.yaml).

A missing file means the built-in OpenAI provider at OPENAI_API_URL, as in the reference. A file that
exists but cannot be used is a start-up error naming the problem (the reference silently falls back).
"""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import params

logger = logging.getLogger(__name__)

FALLBACK_ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/edits",
    "/v1/fine-tunes",
    "/v1/files",
    "/v1/images/generations",
    "/v1/audio/transcriptions",
    "/v1/moderations",
)
FALLBACK_METHODS = ("GET", "POST", "DELETE")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ProviderConfigError(ImproperlyConfigured):
    """API_CONFIG_PATH exists but cannot be used."""


@dataclass(frozen=True)
class Timeouts:
    request: float = 120.0  # whole exchange of a non-streaming request (REQUEST_TIMEOUT applies if lower)
    response_header: float = 30.0  # from sending the request to the upstream's status line and headers
    idle: float = 90.0  # idle read between body chunks; also keep-alive expiry of pooled connections
    connect: float = 30.0  # TCP connect + TLS handshake


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str  # scheme://host[:port]; a path in the YAML value is ignored, as in the reference
    allowed_endpoints: tuple[str, ...]
    allowed_methods: frozenset[str]
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 100
    max_connections_per_host: int = 20
    param_whitelist: dict[str, params.Whitelist] = field(
        default_factory=dict, hash=False, compare=False
    )  # name -> params.Whitelist
    allowed_origins: frozenset[str] = frozenset()
    origin_required: bool = False

    def endpoint_allowed(self, path: str) -> bool:
        return any(path.startswith(prefix) for prefix in self.allowed_endpoints)


class ProviderConfig:
    """The provider this process serves, loaded once per configuration (tests change settings)."""

    def __init__(self) -> None:
        self._current: tuple[tuple[str, str, str], Provider] | None = None

    def current(self) -> Provider:
        key = (settings.API_CONFIG_PATH, settings.DEFAULT_API_PROVIDER, settings.OPENAI_API_URL)
        current = self._current
        if current is None or current[0] != key:
            current = self._current = (key, load_provider(*key))
        return current[1]

    def reload(self) -> Provider:
        """Read API_CONFIG_PATH again (its content changed)."""
        self._current = None
        return self.current()


def load_provider(path: str, wanted: str, fallback_url: str) -> Provider:
    if not os.path.exists(path):
        logger.info("API_CONFIG_PATH %s does not exist: serving the built-in OpenAI provider at %s", path, fallback_url)
        return Provider(
            name="openai",
            base_url=_base_url(fallback_url, "OPENAI_API_URL"),
            allowed_endpoints=FALLBACK_ENDPOINTS,
            allowed_methods=frozenset(FALLBACK_METHODS),
        )
    try:
        with open(path, encoding="utf-8") as fh:
            document = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ProviderConfigError(f"API_CONFIG_PATH {path}: cannot read it as YAML: {exc}") from None
    try:
        return _parse(document, wanted)
    except ProviderConfigError as exc:
        raise ProviderConfigError(f"API_CONFIG_PATH {path}: {exc}") from None


def _parse(document: object, wanted: str) -> Provider:
    if not isinstance(document, dict):
        raise ProviderConfigError("the file must be a mapping with `default_api` and `apis`")
    apis = document.get("apis")
    if not isinstance(apis, dict) or not apis:
        raise ProviderConfigError("`apis` must define at least one provider")
    default = document.get("default_api")
    if default not in apis:
        raise ProviderConfigError(
            f"default_api {default!r} is not one of the providers under `apis` ({', '.join(apis)})"
        )
    providers: dict[Any, Provider] = {name: _parse_provider(str(name), spec) for name, spec in apis.items()}
    if wanted not in providers:
        logger.warning("DEFAULT_API_PROVIDER=%r is not in the provider config: serving default_api %r", wanted, default)
        return providers[default]
    return providers[wanted]


def _parse_provider(name: str, spec: object) -> Provider:
    where = f"apis.{name}"
    if not isinstance(spec, dict):
        raise ProviderConfigError(f"{where} must be a mapping")
    if not spec.get("base_url"):
        raise ProviderConfigError(f"{where}.base_url is required")
    endpoints = _strings(spec.get("allowed_endpoints"), f"{where}.allowed_endpoints")
    methods = _strings(spec.get("allowed_methods"), f"{where}.allowed_methods")
    if not endpoints:
        raise ProviderConfigError(f"{where}.allowed_endpoints must list at least one endpoint")
    if not methods:
        raise ProviderConfigError(f"{where}.allowed_methods must list at least one method")
    connection = _mapping(spec.get("connection"), f"{where}.connection")
    required = [h.lower() for h in _strings(spec.get("required_headers"), f"{where}.required_headers")]
    return Provider(
        name=name,
        base_url=_base_url(str(spec["base_url"]), f"{where}.base_url"),
        allowed_endpoints=tuple(endpoints),
        allowed_methods=frozenset(m.upper() for m in methods),
        timeouts=_timeouts(_mapping(spec.get("timeouts"), f"{where}.timeouts"), f"{where}.timeouts"),
        max_connections=_positive_int(
            connection.get("max_idle_connections", 100), f"{where}.connection.max_idle_connections"
        ),
        max_connections_per_host=_positive_int(
            connection.get("max_idle_connections_per_host", 20), f"{where}.connection.max_idle_connections_per_host"
        ),
        param_whitelist=_whitelist(spec.get("param_whitelist"), f"{where}.param_whitelist"),
        allowed_origins=frozenset(_strings(spec.get("allowed_origins"), f"{where}.allowed_origins")),
        origin_required="origin" in required,
    )


def _timeouts(raw: dict[str, Any], where: str) -> Timeouts:
    default = Timeouts()
    return Timeouts(
        request=go_duration(raw.get("request"), f"{where}.request", default.request),
        response_header=go_duration(raw.get("response_header"), f"{where}.response_header", default.response_header),
        idle=go_duration(raw.get("idle_connection"), f"{where}.idle_connection", default.idle),
        connect=go_duration(raw.get("connect"), f"{where}.connect", default.connect),
    )


def _whitelist(raw: object, where: str) -> dict[str, params.Whitelist]:
    result = {}
    for param, patterns in _mapping(raw, where).items():
        try:
            result[str(param)] = params.Whitelist(tuple(_strings(patterns, f"{where}.{param}")))
        except params.BadPattern as exc:
            raise ProviderConfigError(f"{where}.{param}: {exc}") from None
    return result


def go_duration(raw: object, where: str, default: float) -> float:
    """Seconds from a Go duration such as `30s`, `1m30s`, `250ms` (or a bare number of seconds)."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    text = str(raw).strip()
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ProviderConfigError(f"{where}={raw!r} is not a duration: use e.g. 30s, 1m30s or 250ms")
    return sum(float(amount) * _UNITS[unit] for amount, unit in parts)


def _base_url(raw: str, where: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProviderConfigError(f"{where}={raw!r} must be an absolute http(s) URL such as https://api.openai.com")
    return f"{parts.scheme}://{parts.netloc}"


def _strings(raw: object, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, str | int | float) for item in raw):
        raise ProviderConfigError(f"{where} must be a list of strings")
    return [str(item) for item in raw]


def _mapping(raw: object, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{where} must be a mapping")
    return raw


def _positive_int(raw: object, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ProviderConfigError(f"{where}={raw!r} must be a positive integer")
    return raw
