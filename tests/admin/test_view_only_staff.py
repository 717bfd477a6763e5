"""A staff user with only view permissions sees no write action, and a forged action POST changes nothing."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import AuditEvent
from projects.services import project_deactivate
from tokens.services import token_revoke


@pytest.fixture
def viewer_client(db, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="viewer-password-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_project", "view_token"]))
    client = Client()
    client.force_login(user)
    return client


def _forge(client, url, action, pk):
    return client.post(url, {"action": action, "_selected_action": [str(pk)]}, follow=True)


def test_a_viewer_sees_no_bulk_action_on_tokens_or_projects(viewer_client, token_pair):
    for url in ("/admin/tokens/token/", "/admin/projects/project/"):
        page = viewer_client.get(url)
        assert page.status_code == 200
        assert 'name="action"' not in page.content.decode()


def test_a_forged_reactivate_post_from_a_viewer_leaves_a_revoked_token_revoked(viewer_client, token_pair):
    token = token_pair[0]
    token_revoke(token=token)

    response = _forge(viewer_client, "/admin/tokens/token/", "reactivate", token.pk)

    token.refresh_from_db()
    assert response.status_code in (200, 403) and not token.is_active
    assert not AuditEvent.objects.filter(action="token.update").exists()


def test_a_forged_activate_post_from_a_viewer_leaves_a_project_inactive(viewer_client, project):
    project_deactivate(project=project)

    response = _forge(viewer_client, "/admin/projects/project/", "activate", project.pk)

    project.refresh_from_db()
    assert response.status_code in (200, 403) and not project.is_active
