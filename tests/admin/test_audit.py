"""Audit events in the admin: a read-only list with filters and search, and a detail page."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from audit.services import AuditContext, audit_log
from projects.services import project_create

LIST = "/admin/audit/auditevent/"


def listed(client, **params):
    response = client.get(LIST, params)
    assert response.status_code == 200
    return {e.action for e in response.context["cl"].result_list}


def test_list_filters_by_action_outcome_actor_and_project(admin_client, project):
    other = project_create(name="Globex", api_key="sk-globex-key-0987654321", ctx=AuditContext(actor="cli"))
    audit_log("proxy_request", "denied", project_id=other.pk, details={"reason": "project_inactive"})

    assert listed(admin_client, action="proxy_request") == {"proxy_request"}
    assert listed(admin_client, outcome="denied") == {"proxy_request"}
    assert listed(admin_client, actor="cli") == {"project.create"}
    assert {e.project_id for e in admin_client.get(LIST, {"project_id": str(other.pk)}).context["cl"].result_list} == {
        str(other.pk)
    }
    page = admin_client.get(LIST).content.decode()
    assert "By action" in page and "By outcome" in page and "By project" in page and "By timestamp" in page


def test_list_filters_by_date(admin_client, project):
    old = audit_log("token.list", "success")
    AuditEvent.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=40))
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)

    # The "Today" link of the date filter.
    assert listed(admin_client, timestamp__gte=str(today), timestamp__lt=str(today + timedelta(days=1))) == {
        "project.create"
    }
    last_year = (timezone.now() - timedelta(days=40)).year
    assert "token.list" in listed(admin_client, timestamp__year=str(last_year))
    assert '<nav class="toplinks">' in admin_client.get(LIST).content.decode()  # the date hierarchy bar


def test_list_search_covers_request_id_ip_and_metadata(admin_client, db):
    ctx = AuditContext(actor="management_api", request_id="req-needle-1", client_ip="203.0.113.9")
    audit_log("token.revoke", "success", ctx, details={"already_revoked": True})
    audit_log("cache.purge", "failure", details={"reason": "invalid_url", "url": "needle-in-metadata"})
    audit_log("project.list", "success")

    assert listed(admin_client, q="req-needle") == {"token.revoke"}
    assert listed(admin_client, q="203.0.113") == {"token.revoke"}
    assert listed(admin_client, q="needle-in-metadata") == {"cache.purge"}


def test_list_columns_name_the_project(admin_client, project):
    page = admin_client.get(LIST).content.decode()
    assert f'<a href="/admin/projects/project/{project.pk}/change/" title="{project.pk}">Acme</a>' in page
    for column in ("timestamp", "action", "actor", "outcome", "client_ip"):
        assert f"column-{column}" in page


def test_detail_page_shows_every_field_and_pretty_metadata(admin_client, project):
    ctx = AuditContext(actor="admin:admin", request_id="req-42", client_ip="198.51.100.7", user_agent="curl/8")
    event = audit_log(
        "token.update",
        "success",
        ctx,
        project_id=project.pk,
        token_id="tok-1",
        details={"updated_is_active": False, "updated_max_requests": "unlimited"},
    )

    page = admin_client.get(f"{LIST}{event.pk}/change/").content.decode()

    for text in (
        "Basic information",
        "Network information",
        "Identifiers",
        "Additional details",
        "token.update",
        "admin:admin",
        "req-42",
        "198.51.100.7",
        "curl/8",
        "tok-1",
        str(event.pk),
        "Acme",
    ):
        assert text in page
    assert (
        "<pre>{\n  &quot;updated_is_active&quot;: false,\n  &quot;updated_max_requests&quot;: &quot;unlimited&quot;"
        in page
    )
    assert 'name="action"' not in page  # read-only: no inputs


def test_audit_events_cannot_be_added_changed_or_deleted(admin_client, project):
    event = AuditEvent.objects.get()
    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.post(f"{LIST}{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert admin_client.get(f"{LIST}{event.pk}/delete/").status_code == 403
    assert "delete_selected" not in admin_client.get(LIST).content.decode()
    assert AuditEvent.objects.get().action == "project.create"
