"""Start-up configuration, checked the way an operator meets it: real processes with a real environment."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

MANAGE = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
# Every variable these tests set or that would change their outcome; removed from the inherited environment.
CONTROLLED = [
    "DJANGO_DEBUG",
    "SECRET_KEY",
    "ENCRYPTION_KEY",
    "REQUIRE_ENCRYPTION_KEY",
    "MANAGEMENT_TOKEN",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "REDIS_STREAM_BLOCK_TIME",
    "HTTP_CACHE_ENABLED",
]
PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    "REQUIRE_ENCRYPTION_KEY": "true",
    "MANAGEMENT_TOKEN": secrets.token_hex(16),
    "ALLOWED_HOSTS": "proxy.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
}


def run(command, **env):
    base = {k: v for k, v in os.environ.items() if k not in CONTROLLED and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        command, env={**base, **env}, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=90
    )


def test_check_deploy_is_clean_for_a_production_configuration():
    result = run([*MANAGE, "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("REDIS_STREAM_BLOCK_TIME", "abc", "REDIS_STREAM_BLOCK_TIME='abc' is not a duration"),
        ("HTTP_CACHE_ENABLED", "maybe", "HTTP_CACHE_ENABLED='maybe' is not a boolean"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,nonsense", "TRUSTED_PROXIES: 'nonsense' is not an IP network"),
    ],
)
def test_an_invalid_value_stops_start_up_naming_the_variable(name, value, message):
    result = run([*MANAGE, "check"], **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_the_server_refuses_to_start_without_a_management_token():
    daphne = str(Path(sys.executable).parent / "daphne")
    result = run([daphne, "-b", "127.0.0.1", "-p", "0", "llmproxy.asgi:application"])
    assert result.returncode != 0
    assert "MANAGEMENT_TOKEN" in result.stderr.splitlines()[-1]  # the last line: the reason it stopped


SERVE = [sys.executable, "-c", "import llmproxy.asgi"]  # what a server does first: import the application


def without(*names):
    return {key: value for key, value in PRODUCTION.items() if key not in names}


@pytest.mark.parametrize(
    "environment, named, how",
    [
        (
            without("SECRET_KEY", "REQUIRE_ENCRYPTION_KEY"),
            "SECRET_KEY is the public development default",
            "token_urlsafe(50)",
        ),
        (without("ENCRYPTION_KEY", "REQUIRE_ENCRYPTION_KEY"), "ENCRYPTION_KEY is not set", "openssl rand -base64 32"),
        ({**PRODUCTION, "MANAGEMENT_TOKEN": "change-me"}, "MANAGEMENT_TOKEN is shorter than 32", "token_urlsafe(32)"),
    ],
)
def test_the_server_refuses_each_unsafe_secret_naming_it_and_how_to_generate_one(environment, named, how):
    result = run(SERVE, **environment)
    assert result.returncode != 0
    reason = result.stderr.splitlines()[-1]
    assert named in reason and how in reason


@pytest.mark.parametrize(
    "token",
    [
        "change-me-to-a-long-random-value-before-deploying",
        "CHANGEME_0123456789abcdefghijklmnopqrstuvwxyz",
        "Secret-token-for-production-0123456789abcdef",
        "test_management_token_0123456789abcdefghij",
        "example.example.example.example.example",
        "ab" * 20,
    ],
)
def test_the_server_refuses_a_long_placeholder_management_token(token):
    result = run(SERVE, **{**PRODUCTION, "MANAGEMENT_TOKEN": token})
    assert result.returncode != 0
    assert "MANAGEMENT_TOKEN is" in result.stderr.splitlines()[-1]


def test_the_server_starts_with_production_secrets():
    result = run(SERVE, **PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_development_mode_starts_with_a_short_token_and_no_secrets():
    result = run(SERVE, DJANGO_DEBUG="true", MANAGEMENT_TOKEN="dev")
    assert result.returncode == 0, result.stderr


def test_commands_work_without_any_secret():
    result = run([*MANAGE, "check"])
    assert result.returncode == 0, result.stderr


def test_check_deploy_reports_each_unsafe_secret_with_its_id():
    result = run(
        [*MANAGE, "check", "--deploy"],
        **{**without("SECRET_KEY", "ENCRYPTION_KEY", "REQUIRE_ENCRYPTION_KEY"), "MANAGEMENT_TOKEN": "change-me"},
    )
    assert result.returncode != 0
    report = result.stdout + result.stderr
    assert "(llmproxy.E001) SECRET_KEY is the public development default" in report
    assert "(llmproxy.E002) ENCRYPTION_KEY is not set" in report
    assert "(llmproxy.E003) MANAGEMENT_TOKEN is shorter than 32 characters" in report
