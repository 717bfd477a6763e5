"""Settings for LLM Proxy, read from the environment.

Every variable is listed in `.env.example` and in the README's configuration table.
A value that cannot be parsed stops start-up with a message naming the variable.
"""

import base64
import ipaddress
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true/false, 1/0 or yes/no.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_duration(name: str, default: str) -> float:
    """Seconds from values like `5s`, `250ms`, `30m`, `1h` or a bare number of seconds."""
    raw = os.environ.get(name) or default
    match = _DURATION.match(raw)
    if not match:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a duration: use e.g. 500ms, 5s, 30m or 1h.")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_networks(name: str, default: str) -> list[str]:
    """A comma-separated list of CIDR networks (a bare address is a /32 or /128)."""
    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP network: use CIDRs like 10.0.0.0/8.") from None
    return values


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env(name, default).strip() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(sorted(choices))}.")
    return value


# --- Django core -----------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)
# Public, so only for development mode: a server outside it refuses this value (llmproxy/checks.py).
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me-for-production-0123456789"
SECRET_KEY = env("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY and env_bool("REQUIRE_ENCRYPTION_KEY", False):
    raise ImproperlyConfigured("SECRET_KEY must be set in production (REQUIRE_ENCRYPTION_KEY=true).")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# HTTPS hardening is opt-in: the default deployment is behind a TLS-terminating proxy or on 127.0.0.1.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "llmproxy.apps.LLMProxyConfig",  # the production-secret checks of `check --deploy`
    "llmproxy.admin.ProxyAdminConfig",  # django.contrib.admin with the dashboard counts
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "projects",
    "tokens",
    "audit",
    "instrumentation",
    "dispatch",
    "usage",
    "cli",
    "llmproxy.proxy",
]

# django-prometheus's request metrics (first and last) for everything but /v1, which counts through
# instrumentation.metrics instead: its middlewares are sync and would cost /v1 a thread hop per request.
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "llmproxy.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# /v1 is served by its own lean ASGI handler (llmproxy/asgi.py) with only these async-native
# middlewares: Django's MiddlewareMixin classes hop to a thread per request, which the hot path must not.
PROXY_MIDDLEWARE = [
    "instrumentation.middleware.InstrumentationMiddleware",
]

ROOT_URLCONF = "llmproxy.urls"
ASGI_APPLICATION = "llmproxy.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "data")))
DATABASE_PATH = env("DATABASE_PATH", str(DATA_DIR / "llm-proxy.sqlite3"))
_database_url = env("DATABASE_URL") or f"sqlite:///{DATABASE_PATH}"
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))}
except Exception as exc:  # dj_database_url raises assorted errors for bad URLs
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# django-prometheus's subclasses of the same backends count queries, errors and connections.
if DATABASES["default"]["ENGINE"] in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
    DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace("django.db", "django_prometheus.db")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

LOG_LEVEL = env_choice("LOG_LEVEL", "info", {"debug", "info", "warn", "warning", "error"})
LOG_FORMAT = env_choice("LOG_FORMAT", "json", {"json", "console"})
LOG_FILE = env("LOG_FILE")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "llmproxy.logging.JsonFormatter"},
        "console": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "default": (
            {"class": "logging.FileHandler", "filename": LOG_FILE, "formatter": LOG_FORMAT}
            if LOG_FILE
            else {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}
        ),
    },
    "root": {"handlers": ["default"], "level": "WARNING" if LOG_LEVEL == "warn" else LOG_LEVEL.upper()},
    "loggers": {"django.request": {"level": "ERROR"}, "daphne": {"level": "WARNING"}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Proxy API",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Management, security, storage -----------------------------------------

# Checked when the server starts (llmproxy/asgi.py, llmproxy/checks.py), so commands such as `migrate` work
# without it; outside development mode it must be 32+ characters and no placeholder.
MANAGEMENT_TOKEN = env("MANAGEMENT_TOKEN")
# Failed /manage authentications per client IP and window before that IP gets 429 (llmproxy/manage/auth_failures.py).
MANAGEMENT_AUTH_FAILURE_LIMIT = env_int("MANAGEMENT_AUTH_FAILURE_LIMIT", 20, minimum=1)
MANAGEMENT_AUTH_FAILURE_WINDOW = env_duration("MANAGEMENT_AUTH_FAILURE_WINDOW", "60s")
if MANAGEMENT_AUTH_FAILURE_WINDOW <= 0:
    raise ImproperlyConfigured("MANAGEMENT_AUTH_FAILURE_WINDOW must be more than 0 seconds.")
REQUIRE_ENCRYPTION_KEY = env_bool("REQUIRE_ENCRYPTION_KEY", False)
ENCRYPTION_KEY = env("ENCRYPTION_KEY")
if ENCRYPTION_KEY:
    try:
        if len(base64.b64decode(ENCRYPTION_KEY, validate=True)) != 32:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(
            "ENCRYPTION_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)."
        ) from None
elif REQUIRE_ENCRYPTION_KEY:
    raise ImproperlyConfigured("ENCRYPTION_KEY is required because REQUIRE_ENCRYPTION_KEY=true.")

# Peers whose X-Forwarded-For / X-Real-IP are believed (llmproxy/clientip.py): the audit log's client IP, the
# management API's failed-auth throttle and rate limits. Anyone else is recorded with its own address.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", "127.0.0.0/8,::1/128")

LISTEN_ADDR = env("LISTEN_ADDR", "127.0.0.1:8080")
REQUEST_TIMEOUT = env_duration("REQUEST_TIMEOUT", "30s")
MAX_REQUEST_SIZE = env_int("MAX_REQUEST_SIZE", 10485760, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_SIZE

AUDIT_ENABLED = env_bool("AUDIT_ENABLED", True)
AUDIT_LOG_FILE = env("AUDIT_LOG_FILE", str(DATA_DIR / "audit.log"))
AUDIT_CREATE_DIR = env_bool("AUDIT_CREATE_DIR", True)
AUDIT_STORE_IN_DB = env_bool("AUDIT_STORE_IN_DB", True)

# --- Proxy ------------------------------------------------------------------

API_CONFIG_PATH = env("API_CONFIG_PATH", str(BASE_DIR / "config" / "api_providers.yaml"))
DEFAULT_API_PROVIDER = env("DEFAULT_API_PROVIDER", "openai")
OPENAI_API_URL = env("OPENAI_API_URL", "https://api.openai.com")
LLM_PROXY_ENFORCE_PROJECT_ACTIVE = env_bool("LLM_PROXY_ENFORCE_PROJECT_ACTIVE", True)
LLM_PROXY_API_KEY_CACHE_TTL = env_duration("LLM_PROXY_API_KEY_CACHE_TTL", "30s")
LLM_PROXY_API_KEY_CACHE_MAX = env_int("LLM_PROXY_API_KEY_CACHE_MAX", 10000, minimum=0)
TOKEN_CACHE_TTL = env_duration("TOKEN_CACHE_TTL", "5m")
TOKEN_CACHE_MAX = env_int("TOKEN_CACHE_MAX", 10000, minimum=0)
USAGE_STATS_BUFFER_SIZE = env_int("USAGE_STATS_BUFFER_SIZE", env_int("CACHE_STATS_BUFFER_SIZE", 1000), minimum=1)
CACHE_STATS_BUFFER_SIZE = env_int("CACHE_STATS_BUFFER_SIZE", 1000, minimum=1)
USAGE_STATS_FLUSH_INTERVAL = env_duration("USAGE_STATS_FLUSH_INTERVAL", "1s")
CIRCUIT_BREAKER_THRESHOLD = env_int("CIRCUIT_BREAKER_THRESHOLD", 5, minimum=0)
CIRCUIT_BREAKER_COOLDOWN = env_duration("CIRCUIT_BREAKER_COOLDOWN", "30s")
SHUTDOWN_TIMEOUT = env_duration("SHUTDOWN_TIMEOUT", "30s")

# --- Instrumentation and the event bus ---------------------------------------

OBSERVABILITY_ENABLED = env_bool("OBSERVABILITY_ENABLED", True)
OBSERVABILITY_BUFFER_SIZE = env_int("OBSERVABILITY_BUFFER_SIZE", 1000, minimum=1)
OBSERVABILITY_MAX_REQUEST_BODY_BYTES = env_int("OBSERVABILITY_MAX_REQUEST_BODY_BYTES", 65536) or 65536
OBSERVABILITY_MAX_RESPONSE_BODY_BYTES = env_int("OBSERVABILITY_MAX_RESPONSE_BODY_BYTES", 262144) or 262144
if OBSERVABILITY_MAX_REQUEST_BODY_BYTES < 0:
    OBSERVABILITY_MAX_REQUEST_BODY_BYTES = 65536
if OBSERVABILITY_MAX_RESPONSE_BODY_BYTES < 0:
    OBSERVABILITY_MAX_RESPONSE_BODY_BYTES = 262144
# The most any decompression of an event body may produce (web process and dispatchers): a few KB of gzip can
# expand to gigabytes, so decoding stops here and the result is marked truncated.
OBSERVABILITY_MAX_DECODED_BYTES = env_int("OBSERVABILITY_MAX_DECODED_BYTES", 1048576, minimum=1)
FILE_EVENT_LOG = env("FILE_EVENT_LOG")
LOG_BINARY_RESPONSES = env_bool("LOG_BINARY_RESPONSES", False)

LLM_PROXY_EVENT_BUS = env_choice("LLM_PROXY_EVENT_BUS", "redis-streams", {"redis-streams", "in-memory", "memory"})
if LLM_PROXY_EVENT_BUS == "memory":
    LLM_PROXY_EVENT_BUS = "in-memory"
REDIS_ADDR = env("REDIS_ADDR", "localhost:6379")
REDIS_DB = env_int("REDIS_DB", 0, minimum=0)
REDIS_PASSWORD = env("REDIS_PASSWORD")
REDIS_URL = env("REDIS_URL") or f"redis://{':' + REDIS_PASSWORD + '@' if REDIS_PASSWORD else ''}{REDIS_ADDR}/{REDIS_DB}"
REDIS_STREAM_KEY = env("REDIS_STREAM_KEY", "llm-proxy-events")
REDIS_CONSUMER_GROUP = env("REDIS_CONSUMER_GROUP")  # empty: llm-proxy-dispatchers-<service>
REDIS_CONSUMER_NAME = env("REDIS_CONSUMER_NAME")
REDIS_STREAM_MAX_LEN = env_int("REDIS_STREAM_MAX_LEN", 10000, minimum=0)
REDIS_STREAM_BLOCK_TIME = env_duration("REDIS_STREAM_BLOCK_TIME", "5s")
REDIS_STREAM_CLAIM_TIME = env_duration("REDIS_STREAM_CLAIM_TIME", "30s")
REDIS_STREAM_BATCH_SIZE = env_int("REDIS_STREAM_BATCH_SIZE", 100, minimum=1)
REDIS_DEAD_LETTER_MAX_LEN = env_int("REDIS_DEAD_LETTER_MAX_LEN", 10000, minimum=0)  # 0: never trimmed
EVENT_PUBLISH_QUEUE_SIZE = env_int("EVENT_PUBLISH_QUEUE_SIZE", 10000, minimum=1)
# Bytes of events (bodies + a fixed overhead each) the publish buffer holds, with the batch in hand: 64 MiB.
OBSERVABILITY_BUFFER_BYTES = env_int("OBSERVABILITY_BUFFER_BYTES", 64 * 1024 * 1024, minimum=1)

# --- HTTP response cache ------------------------------------------------------

HTTP_CACHE_ENABLED = env_bool("HTTP_CACHE_ENABLED", True)
HTTP_CACHE_BACKEND = env_choice("HTTP_CACHE_BACKEND", "in-memory", {"in-memory", "memory", "redis"})
HTTP_CACHE_STREAM_RESPONSES = env_bool("HTTP_CACHE_STREAM_RESPONSES", False)
HTTP_CACHE_DEFAULT_TTL = env_int("HTTP_CACHE_DEFAULT_TTL", 0, minimum=0)
HTTP_CACHE_MAX_OBJECT_BYTES = env_int("HTTP_CACHE_MAX_OBJECT_BYTES", 1048576, minimum=1)
HTTP_CACHE_MAX_ENTRIES = env_int("HTTP_CACHE_MAX_ENTRIES", 10000, minimum=1)
HTTP_CACHE_MAX_BYTES = env_int("HTTP_CACHE_MAX_BYTES", 268435456, minimum=1)
REDIS_CACHE_URL = env("REDIS_CACHE_URL") or f"redis://{REDIS_ADDR}/{REDIS_DB}"
REDIS_CACHE_KEY_PREFIX = env("REDIS_CACHE_KEY_PREFIX", "llmproxy:cache:")
REDIS_CACHE_POOL_SIZE = env_int("REDIS_CACHE_POOL_SIZE", 50, minimum=1)
REDIS_CACHE_TIMEOUT = env_duration("REDIS_CACHE_TIMEOUT", "1s")
REDIS_SCAN_COUNT = env_int("REDIS_SCAN_COUNT", 2048, minimum=1)

# Redis is "configured" for cross-process work (cache invalidation) when the bus or the cache uses it.
REDIS_CONFIGURED = LLM_PROXY_EVENT_BUS == "redis-streams" or HTTP_CACHE_BACKEND == "redis"

# --- Metrics ------------------------------------------------------------------

ENABLE_METRICS = env_bool("ENABLE_METRICS", True)
METRICS_PATH = "/" + env("METRICS_PATH", "/metrics").strip("/")
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:  # here, because it must happen before any metric object is created
    from instrumentation.multiprocess import configure as _configure_prometheus_multiprocess

    _configure_prometheus_multiprocess(PROMETHEUS_MULTIPROC_DIR)

# --- Dispatch -------------------------------------------------------------------

DISPATCHER_SERVICE = env_choice("DISPATCHER_SERVICE", "file", {"file", "lunary", "helicone", "usage"})
DISPATCHER_ENDPOINT = env("DISPATCHER_ENDPOINT") or env("LLM_PROXY_ENDPOINT")
DISPATCHER_BUFFER = env_int("DISPATCHER_BUFFER", 1000, minimum=1)
DISPATCHER_BATCH_SIZE = env_int("DISPATCHER_BATCH_SIZE", 100, minimum=1)
DISPATCHER_DETACH = env_bool("DISPATCHER_DETACH", False)
DISPATCHER_FLUSH_INTERVAL = env_duration("DISPATCHER_FLUSH_INTERVAL", "5s")
DISPATCHER_RETRY_BASE = env_duration("DISPATCHER_RETRY_BASE", "1s")
LLM_PROXY_API_KEY = env("LLM_PROXY_API_KEY")
LLM_PROXY_ENDPOINT = env("LLM_PROXY_ENDPOINT")
LLM_PROXY_DISPATCHER_VERBOSE = env_bool("LLM_PROXY_DISPATCHER_VERBOSE", False)
LUNARY_API_KEY = env("LUNARY_API_KEY")
LUNARY_ENDPOINT = env("LUNARY_ENDPOINT", "https://api.lunary.ai/v1/runs/ingest")
HELICONE_API_KEY = env("HELICONE_API_KEY")
HELICONE_ENDPOINT = env("HELICONE_ENDPOINT", "https://api.worker.helicone.ai/oai/v1/log")
DISPATCH_SERVICES = env_list("DISPATCH_SERVICES")
DISPATCH_FILE_PATH = env("DISPATCH_FILE_PATH", str(DATA_DIR / "events.jsonl"))
DISPATCH_INTERVAL = env_duration("DISPATCH_INTERVAL", "1s")
DISPATCH_MAX_DELIVERIES = env_int("DISPATCH_MAX_DELIVERIES", 5, minimum=1)
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90, minimum=1)

CELERY_BROKER_URL = env("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

MANAGEMENT_API_BASE_URL = env("MANAGEMENT_API_BASE_URL", "http://localhost:8080")

# --- Containers (docker/entrypoint.sh, docker/launch.py) ------------------------

WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 1, minimum=1)
WEB_SERVER = env_choice("WEB_SERVER", "daphne", {"daphne", "uvicorn"})
MIGRATE_ON_START = env_bool("MIGRATE_ON_START", True)
DB_WAIT_TIMEOUT = env_duration("DB_WAIT_TIMEOUT", "60s")
