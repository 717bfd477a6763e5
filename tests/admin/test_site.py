"""Logging in to the admin and its index page (the dashboard)."""

from datetime import timedelta

from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tokens.models import Token
from tokens.services import token_create, token_revoke


def test_createsuperuser_noinput_gives_a_working_admin_login(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-ops-password")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.com")
    call_command("createsuperuser", interactive=False, verbosity=0)

    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "ops", "password": "a-long-ops-password"})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_wrong_password_is_refused(admin_user):
    response = Client().post("/admin/login/", {"username": "admin", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()


def test_admin_pages_need_a_login(db):
    response = Client().get("/admin/tokens/token/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_index_lists_projects_tokens_and_audit_events(admin_client, project):
    page = admin_client.get("/admin/").content.decode()
    for name, url in [
        ("Projects", "/admin/projects/project/"),
        ("Tokens", "/admin/tokens/token/"),
        ("Audit events", "/admin/audit/auditevent/"),
    ]:
        assert f'<a href="{url}">{name}</a>' in page


def test_index_shows_projects_tokens_active_tokens_and_total_requests(admin_client, project):
    active, _ = token_create(project=project, duration_minutes=60)
    revoked, _ = token_create(project=project, duration_minutes=60)
    expired, _ = token_create(project=project, duration_minutes=60)
    token_revoke(token=revoked)
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1), request_count=5)
    Token.objects.filter(pk=active.pk).update(request_count=7)

    response = admin_client.get("/admin/")

    assert response.context["proxy_counts"] == {"projects": 1, "tokens": 3, "active_tokens": 1, "total_requests": 12}
    page = response.content.decode()
    assert '<div class="card" id="count-active-tokens"><div class="value">1</div>' in page
    assert '<div class="card" id="count-total-requests"><div class="value">12</div>' in page
