"""Projects in the admin: list, search, filter, write-only key, actions, all audited as the admin user."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from projects.models import Project
from projects.services import project_create, project_deactivate
from tokens.models import Token
from tokens.services import token_create, token_revoke

LIST = "/admin/projects/project/"
ADD = "/admin/projects/project/add/"
KEY = "sk-upstream-acme-key-1234567890"


def change_url(project):
    return f"/admin/projects/project/{project.pk}/change/"


def run_action(client, action, *projects):
    return client.post(LIST, {"action": action, "_selected_action": [str(p.pk) for p in projects]}, follow=True)


def edit_data(project, **changes):
    return {"name": project.name, "api_key": "", "is_active": "on" if project.is_active else "", **changes}


def test_adding_a_project_stores_the_key_encrypted_and_audits_the_admin(admin_client):
    response = admin_client.post(ADD, {"name": "Globex", "api_key": "sk-globex-upstream-key-0987654321"}, follow=True)

    project = Project.objects.get(name="Globex")
    assert response.status_code == 200
    assert project.api_key == "sk-globex-upstream-key-0987654321" and project.is_active
    assert "sk-globex-upstream-key-0987654321" not in project.api_key_encrypted
    assert "sk-globex-upstream-key-0987654321" not in response.content.decode()
    event = AuditEvent.objects.get(action="project.create")
    assert (event.actor, event.outcome, event.project_id) == ("admin:admin", "success", str(project.pk))
    assert event.method == "POST" and event.path == ADD and event.request_id


def test_adding_a_project_needs_a_key(admin_client):
    response = admin_client.post(ADD, {"name": "Globex", "api_key": ""})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not Project.objects.exists()


def test_an_obfuscated_key_is_refused_with_the_services_message(admin_client, project):
    for key in ("sk-upstre...7890", "sk-up****7890"):
        response = admin_client.post(ADD, {"name": "Globex", "api_key": key})
        assert "cannot save obfuscated API key - please provide the full API key" in response.content.decode()
        response = admin_client.post(change_url(project), edit_data(project, api_key=key))
        assert "cannot save obfuscated API key" in response.content.decode()
    project.refresh_from_db()
    assert project.api_key == KEY and Project.objects.count() == 1
    assert not AuditEvent.objects.filter(actor="admin:admin").exists()


def test_a_duplicate_name_is_a_form_error(admin_client, project):
    response = admin_client.post(ADD, {"name": "Acme", "api_key": "sk-another-upstream-key-12345"})
    assert response.status_code == 200 and "Project with this Name already exists." in response.content.decode()
    assert Project.objects.count() == 1


def test_the_edit_form_never_shows_the_key(admin_client, project):
    page = admin_client.get(change_url(project)).content.decode()
    assert KEY not in page
    assert project.api_key_obfuscated in page  # "sk-upstr...7890", as help text
    assert 'type="password"' in page


def test_an_empty_key_on_edit_keeps_the_key(admin_client, project):
    response = admin_client.post(change_url(project), edit_data(project, name="Acme Corp"))

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Acme Corp" and project.api_key == KEY
    event = AuditEvent.objects.get(action="project.update")
    assert event.actor == "admin:admin" and event.metadata["updated_fields"] == ["name"]


def test_a_new_key_on_edit_replaces_it(admin_client, project):
    admin_client.post(change_url(project), edit_data(project, api_key="sk-rotated-upstream-key-5555"))
    project.refresh_from_db()
    assert project.api_key == "sk-rotated-upstream-key-5555"
    assert AuditEvent.objects.get(action="project.update").metadata["updated_fields"] == ["api_key"]


def test_unticking_active_with_revoke_tokens_deactivates_and_revokes(admin_client, project, token_pair):
    response = admin_client.post(change_url(project), edit_data(project, is_active="", revoke_tokens="on"))

    assert response.status_code == 302
    project.refresh_from_db()
    assert not project.is_active and project.deactivated_at
    assert not Token.objects.get(pk=token_pair[0].pk).is_active
    assert AuditEvent.objects.get(action="project.update").metadata["tokens_revoked"] == 1


def test_revoke_tokens_without_deactivating_is_a_form_error(admin_client, project, token_pair):
    response = admin_client.post(change_url(project), edit_data(project, revoke_tokens="on"))
    assert response.status_code == 200 and "Tokens are revoked only when deactivating" in response.content.decode()
    assert Token.objects.get(pk=token_pair[0].pk).is_active


def test_saving_without_changes_writes_no_audit_event(admin_client, project):
    assert admin_client.post(change_url(project), edit_data(project)).status_code == 302
    assert not AuditEvent.objects.filter(action="project.update").exists()


def test_list_shows_name_obfuscated_key_status_token_counts_and_created(admin_client, project):
    token_create(project=project, duration_minutes=60)
    revoked, _ = token_create(project=project, duration_minutes=60)
    token_revoke(token=revoked)

    page = admin_client.get(LIST).content.decode()

    assert "Acme" in page and "sk-upstr...7890" in page and KEY not in page
    assert "Active" in page
    assert f'<a href="/admin/tokens/token/?project__id__exact={project.pk}">1 active / 2 total</a>' in page
    assert f'href="/admin/tokens/token/add/?project={project.pk}"' in page
    assert "column-created_at" in page


def test_list_counts_tokens_without_a_query_per_project(admin_client, project):
    def queries_for_list():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(LIST).status_code == 200
        return len(ctx)

    token_create(project=project, duration_minutes=60)
    few = queries_for_list()
    for n in range(5):
        token_create(project=project_create(name=f"P{n}", api_key=f"sk-key-number-{n}-abcdef"), duration_minutes=60)
    assert queries_for_list() == few


def test_list_search_and_status_filter(admin_client, project):
    other = project_create(name="Globex", api_key="sk-globex-upstream-key-0987654321")
    project_deactivate(project=other)

    assert [p.name for p in admin_client.get(LIST, {"q": "glob"}).context["cl"].result_list] == ["Globex"]
    assert [p.name for p in admin_client.get(LIST, {"status": "inactive"}).context["cl"].result_list] == ["Globex"]
    assert [p.name for p in admin_client.get(LIST, {"status": "active"}).context["cl"].result_list] == ["Acme"]
    assert "Inactive" in admin_client.get(LIST, {"status": "inactive"}).content.decode()


def test_deactivate_action_keeps_tokens(admin_client, project, token_pair):
    response = run_action(admin_client, "deactivate", project)

    assert "Deactivated 1 project(s)." in response.content.decode()
    project.refresh_from_db()
    assert not project.is_active
    assert Token.objects.get(pk=token_pair[0].pk).is_active
    event = AuditEvent.objects.get(action="project.update")
    assert event.actor == "admin:admin" and "is_active" in event.metadata["updated_fields"]


def test_deactivate_and_revoke_action_revokes_every_token(admin_client, project, token_pair):
    token_create(project=project, duration_minutes=60)

    response = run_action(admin_client, "deactivate_and_revoke", project)

    assert "Deactivated 1 project(s); revoked 2 token(s)." in response.content.decode()
    project.refresh_from_db()
    assert not project.is_active
    assert not Token.objects.filter(project=project, is_active=True).exists()
    assert AuditEvent.objects.get(action="project.update", actor="admin:admin").metadata["tokens_revoked"] == 2


def test_activate_action(admin_client, project):
    project_deactivate(project=project)

    response = run_action(admin_client, "activate", project)

    assert "Activated 1 project(s)." in response.content.decode()
    project.refresh_from_db()
    assert project.is_active and project.deactivated_at is None
    assert AuditEvent.objects.filter(action="project.update", actor="admin:admin").count() == 1


def test_revoke_all_tokens_action_leaves_the_project_active(admin_client, project, token_pair):
    already, _ = token_create(project=project, duration_minutes=60)
    token_revoke(token=already)

    response = run_action(admin_client, "revoke_all_tokens", project)

    assert "Revoked 1 token(s); 1 were already revoked." in response.content.decode()
    project.refresh_from_db()
    assert project.is_active
    assert not Token.objects.filter(is_active=True).exists()
    event = AuditEvent.objects.get(action="token.revoke_batch")
    assert event.actor == "admin:admin" and event.metadata["revoked_count"] == 1


def test_projects_cannot_be_deleted(admin_client, project):
    assert admin_client.get(f"/admin/projects/project/{project.pk}/delete/").status_code == 403
    assert "delete_selected" not in admin_client.get(LIST).content.decode()
