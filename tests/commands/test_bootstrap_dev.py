"""`manage.py bootstrap_dev`, the first-start step of `make run`."""

import stat
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from llmproxy.checks import management_token_problem


def bootstrap():
    out = StringIO()
    call_command("bootstrap_dev", stdout=out)
    return out.getvalue()


def test_first_run_creates_a_token_and_an_admin_login_readable_only_by_the_owner(db, tmp_path, settings):
    settings.MANAGEMENT_TOKEN = ""
    settings.DATA_DIR = tmp_path / "data"

    printed = bootstrap()

    token = (tmp_path / "data" / "management_token").read_text().strip()
    password = (tmp_path / "data" / "admin_password").read_text().strip()
    assert len(token) == 32 and len(password) >= 16
    assert management_token_problem(token) == ""  # strong enough for a server outside development mode too
    for name in ("management_token", "admin_password"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600
    assert "http://127.0.0.1:8080/admin/" in printed
    assert "Username:         admin" in printed
    assert f"Password:         {password}" in printed and f"Management token: {token}" in printed
    assert Client().login(username="admin", password=password)
    assert get_user_model().objects.get(username="admin").is_superuser


def test_later_runs_keep_and_print_the_same_credentials(db, settings):
    settings.MANAGEMENT_TOKEN = ""
    first = bootstrap()
    assert bootstrap() == first
    assert get_user_model().objects.count() == 1


def test_an_exported_management_token_is_the_one_printed(db, settings):
    settings.MANAGEMENT_TOKEN = "exported-token-value"
    assert "Management token: exported-token-value" in bootstrap()


def test_the_admin_url_follows_listen_addr(db, settings):
    settings.LISTEN_ADDR = "0.0.0.0:9000"
    assert "http://127.0.0.1:9000/admin/" in bootstrap()
    settings.LISTEN_ADDR = "localhost:8081"
    assert "http://localhost:8081/admin/" in bootstrap()


def test_an_admin_created_by_hand_is_kept_and_its_password_not_invented(admin_user, tmp_path, settings):
    printed = bootstrap()
    assert "set outside bootstrap_dev" in printed
    assert not (tmp_path / "admin_password").exists()
    assert admin_user.check_password("admin-password-123")


def test_a_lost_database_gets_the_admin_back_with_the_saved_password(db, tmp_path, settings):
    (tmp_path / "admin_password").write_text("saved-password-from-before\n")
    assert "Password:         saved-password-from-before" in bootstrap()
    assert Client().login(username="admin", password="saved-password-from-before")
