"""Production secrets: what a web server refuses to start with, and what `manage.py check --deploy` reports.

Outside development mode (DJANGO_DEBUG=true, which `make run` sets) a server refuses the public development
SECRET_KEY, a missing ENCRYPTION_KEY (project keys would be encrypted with a key derived from SECRET_KEY) and
a weak MANAGEMENT_TOKEN; `refuse_unsafe_start` is called by llmproxy/asgi.py only, so commands such as
`migrate` still work. `check --deploy` reports the same problems as llmproxy.E001-E003.

A weak MANAGEMENT_TOKEN is shorter than 32 characters, uses fewer than 8 distinct characters, or is a
placeholder: lower-cased with everything but letters and digits removed, it starts with one of
PLACEHOLDERS ("change-me", "Change_Me_Later...", "TEST-token-...", "secret123..." all do). Only the start
is compared, so a random token that happens to contain such a word somewhere is not refused.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

MIN_MANAGEMENT_TOKEN_LENGTH = 32
PLACEHOLDERS = (
    "changeme", "replaceme", "secret", "password", "passwd", "test", "example", "sample",
    "dummy", "default", "placeholder", "insecure", "yourtoken", "xxxx",
)  # fmt: skip
GENERATE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
GENERATE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
GENERATE_ENCRYPTION_KEY = "openssl rand -base64 32"
DEVELOPMENT_MODE = "development mode (DJANGO_DEBUG=true)"


def management_token_problem(token: str) -> str:
    """Why MANAGEMENT_TOKEN is unfit for a server outside development mode ("" when it is fine)."""
    if not token:
        return f"MANAGEMENT_TOKEN is not set: generate one with {GENERATE_TOKEN}."
    folded = "".join(ch for ch in token.lower() if ch.isalnum())
    if len(token) < MIN_MANAGEMENT_TOKEN_LENGTH:
        reason = f"shorter than {MIN_MANAGEMENT_TOKEN_LENGTH} characters"
    elif folded.startswith(PLACEHOLDERS):
        reason = "a placeholder"
    elif len(set(token)) < 8:
        reason = "made of fewer than 8 distinct characters"
    else:
        return ""
    return f"MANAGEMENT_TOKEN is {reason}: generate one with {GENERATE_TOKEN}."


def secret_key_problem() -> str:
    if settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return ""
    return f"SECRET_KEY is the public development default: generate one with {GENERATE_SECRET_KEY}."


def encryption_key_problem() -> str:
    if settings.ENCRYPTION_KEY:
        return ""
    return (
        "ENCRYPTION_KEY is not set, so project API keys would be encrypted with a key derived from SECRET_KEY:"
        f" generate one with {GENERATE_ENCRYPTION_KEY}."
    )


def refuse_unsafe_start() -> None:
    """Raise ImproperlyConfigured naming every unsafe secret; in development mode only an empty token."""
    if settings.DEBUG:
        if not settings.MANAGEMENT_TOKEN:
            raise ImproperlyConfigured(management_token_problem(""))
        return
    problems = [secret_key_problem(), encryption_key_problem(), management_token_problem(settings.MANAGEMENT_TOKEN)]
    found = [problem for problem in problems if problem]
    if found:
        # One line: the last line of the server's traceback is what an operator reads first.
        raise ImproperlyConfigured(f"the server refuses to start outside {DEVELOPMENT_MODE}: " + " ".join(found))


def check_production_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The `check --deploy` report of the secrets a server would refuse."""
    found = [
        ("llmproxy.E001", secret_key_problem()),
        ("llmproxy.E002", encryption_key_problem()),
        ("llmproxy.E003", management_token_problem(settings.MANAGEMENT_TOKEN)),
    ]
    return [checks.Error(message, id=check_id) for check_id, message in found if message]


def register() -> None:
    checks.register(check_production_secrets, checks.Tags.security, deploy=True)
