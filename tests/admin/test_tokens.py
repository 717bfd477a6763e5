"""Tokens in the admin: the secret is shown once after creation, then never again."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from projects.services import project_create, project_deactivate
from tokens.admin import PENDING_SECRETS_KEY
from tokens.models import Token, hash_token
from tokens.services import token_create, token_revoke

LIST = "/admin/tokens/token/"
ADD = "/admin/tokens/token/add/"
SECRET_RE = re.compile(r"sk-[A-Za-z0-9_-]{22}")


def run_action(client, action, *tokens):
    return client.post(LIST, {"action": action, "_selected_action": [str(t.pk) for t in tokens]}, follow=True)


def listed(client, **params):
    return {t.pk for t in client.get(LIST, params).context["cl"].result_list}


def test_adding_a_token_shows_its_secret_once_with_examples(admin_client, project):
    response = admin_client.post(ADD, {"project": project.pk, "duration": "1440", "max_requests": "10"})

    token = Token.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/tokens/token/{token.pk}/created/"
    page = admin_client.get(response["Location"]).content.decode()
    secret = SECRET_RE.search(page).group()
    assert token.token_hash == hash_token(secret) and token.max_requests == 10
    assert abs(token.expires_at - (timezone.now() + timedelta(minutes=1440))) < timedelta(minutes=1)
    assert "will not be shown again" in page
    assert f'curl http://testserver/v1/chat/completions \\\n  -H "Authorization: Bearer {secret}"' in page
    assert f'OpenAI(base_url="http://testserver/v1", api_key="{secret}")' in page

    reloaded = admin_client.get(response["Location"]).content.decode()
    assert secret not in reloaded and not SECRET_RE.search(reloaded)
    assert "cannot be displayed again" in reloaded and token.obfuscated in reloaded


@pytest.mark.django_db(transaction=True)  # the audit file's line is written when the transaction commits
def test_the_secret_is_kept_nowhere_after_it_was_shown(admin_client, project, settings):
    location = admin_client.post(ADD, {"project": project.pk, "duration": "60"})["Location"]
    secret = SECRET_RE.search(admin_client.get(location).content.decode()).group()

    assert admin_client.session.get(PENDING_SECRETS_KEY) == {}
    token = Token.objects.get()
    assert secret not in str(Token.objects.values().get())
    event = AuditEvent.objects.get(action="token.create")
    assert event.actor == "admin:admin" and event.project_id == str(project.pk) and event.token_id == str(token.pk)
    assert secret not in str(event.metadata)
    with open(settings.AUDIT_LOG_FILE) as fh:
        assert secret not in fh.read()


def test_another_admin_session_never_sees_the_secret(admin_client, admin_user, project, client):
    location = admin_client.post(ADD, {"project": project.pk, "duration": "60"})["Location"]
    client.force_login(admin_user)  # same user, different session
    assert not SECRET_RE.search(client.get(location).content.decode())
    assert SECRET_RE.search(admin_client.get(location).content.decode())


def test_a_custom_lifetime_in_minutes(admin_client, project):
    admin_client.post(ADD, {"project": project.pk, "duration": "custom", "custom_minutes": "90"})
    token = Token.objects.get()
    assert abs(token.expires_at - (timezone.now() + timedelta(minutes=90))) < timedelta(minutes=1)
    assert token.max_requests is None
    assert AuditEvent.objects.get(action="token.create").metadata["duration_minutes"] == 90


def test_custom_lifetime_needs_minutes_within_a_year(admin_client, project):
    page = admin_client.post(ADD, {"project": project.pk, "duration": "custom"}).content.decode()
    assert "Enter the lifetime in minutes." in page
    page = admin_client.post(ADD, {"project": project.pk, "duration": "custom", "custom_minutes": "525601"})
    assert "Ensure this value is less than or equal to 525600." in page.content.decode()
    assert not Token.objects.exists()


def test_inactive_projects_cannot_get_tokens(admin_client, project):
    project_deactivate(project=project)
    page = admin_client.post(ADD, {"project": project.pk, "duration": "60"}).content.decode()
    assert "Select a valid choice." in page
    assert not Token.objects.exists()


def test_the_add_form_preselects_the_project_from_the_link(admin_client, project):
    page = admin_client.get(ADD, {"project": str(project.pk)}).content.decode()
    assert f'<option value="{project.pk}" selected>Acme</option>' in page
    assert 'name="_save"' in page and 'name="_addanother"' not in page and 'name="_continue"' not in page


def test_list_columns_show_obfuscated_token_usage_and_status(admin_client, project):
    limited, secret = token_create(project=project, duration_minutes=60, max_requests=10)
    Token.objects.filter(pk=limited.pk).update(request_count=3, cache_hit_count=2)
    unlimited, _ = token_create(project=project, duration_minutes=60)
    token_revoke(token=unlimited)

    page = admin_client.get(LIST).content.decode()

    assert limited.obfuscated in page and secret not in page
    assert "used 3 / 10 (cache 2)" in page and "used 0 / unlimited (cache 0)" in page
    assert '<td class="field-status">Active</td>' in page and '<td class="field-status">Revoked</td>' in page
    assert f'<a href="/admin/projects/project/{project.pk}/change/">Acme</a>' in page
    for column in ("expires_at", "last_used_at"):
        assert f"column-{column}" in page


def test_list_filters_by_status_and_project(admin_client, project):
    active, _ = token_create(project=project, duration_minutes=60)
    expired, _ = token_create(project=project, duration_minutes=60)
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, _ = token_create(project=project, duration_minutes=60)
    token_revoke(token=revoked)
    other, _ = token_create(
        project=project_create(name="Globex", api_key="sk-globex-key-0987654321"), duration_minutes=60
    )

    assert listed(admin_client, status="active") == {active.pk, other.pk}
    assert listed(admin_client, status="expired") == {expired.pk}
    assert listed(admin_client, status="revoked") == {revoked.pk}
    assert listed(admin_client, project__id__exact=str(other.project_id)) == {other.pk}
    assert '<td class="field-status">Expired</td>' in admin_client.get(LIST, {"status": "expired"}).content.decode()


def test_searching_a_full_token_finds_it(admin_client, token_pair, project):
    token_create(project=project, duration_minutes=60)
    token, secret = token_pair
    assert listed(admin_client, q=secret) == {token.pk}


def test_revoke_and_reactivate_actions_go_through_the_services(admin_client, token_pair):
    token = token_pair[0]

    assert "Revoked 1 token(s)." in run_action(admin_client, "revoke", token).content.decode()
    token.refresh_from_db()
    assert not token.is_active and token.deactivated_at
    assert AuditEvent.objects.get(action="token.revoke").actor == "admin:admin"

    assert "Reactivated 1 token(s)." in run_action(admin_client, "reactivate", token).content.decode()
    token.refresh_from_db()
    assert token.is_active and token.deactivated_at is None
    event = AuditEvent.objects.get(action="token.update")
    assert event.actor == "admin:admin" and event.metadata["updated_is_active"] is True


def test_the_change_form_edits_only_active_and_max_requests(admin_client, token_pair):
    token = token_pair[0]
    url = f"/admin/tokens/token/{token.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="token_hash"' not in page and token.token_hash not in page
    assert 'name="is_active"' in page and 'name="max_requests"' in page

    response = admin_client.post(url, {"is_active": "", "max_requests": "5", "token_hash": "0" * 64})

    assert response.status_code == 302
    stored = Token.objects.get(pk=token.pk)
    assert (stored.is_active, stored.max_requests, stored.token_hash) == (False, 5, token.token_hash)
    event = AuditEvent.objects.get(action="token.update")
    assert event.actor == "admin:admin"
    assert event.metadata["updated_is_active"] is False and event.metadata["updated_max_requests"] == 5


def test_clearing_max_requests_makes_the_token_unlimited(admin_client, project):
    token, _ = token_create(project=project, duration_minutes=60, max_requests=3)
    admin_client.post(f"/admin/tokens/token/{token.pk}/change/", {"is_active": "on", "max_requests": ""})
    assert Token.objects.get(pk=token.pk).max_requests is None
    event = AuditEvent.objects.get(action="token.update")
    assert event.metadata["updated_max_requests"] == "unlimited" and "updated_is_active" not in event.metadata


def test_tokens_cannot_be_deleted(admin_client, token_pair):
    assert admin_client.get(f"/admin/tokens/token/{token_pair[0].pk}/delete/").status_code == 403
