"""The usage dashboard page in the admin (the browser test checks the charts are drawn)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from projects.services import project_create
from usage.rollups import usage_record

DASHBOARD = "/admin/usage/usagerollup/"


def traffic(project_id, token_id, *, requests=1, status=200, duration_ms=120, hour=None):
    hour = hour or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    entry = {
        "hour": hour.isoformat(),
        "project_id": project_id,
        "token_id": token_id,
        "status": status,
        "duration_ms": duration_ms,
        "prompt_tokens": 9,
        "completion_tokens": 3,
    }
    usage_record([entry] * requests)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_dashboard_is_linked_from_the_admin_index(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert DASHBOARD in response.content.decode()
    assert reverse("admin:usage_usagerollup_changelist") == DASHBOARD


def test_the_dashboard_shows_totals_tables_and_chart_data(admin_client, token_pair):
    token, _ = token_pair
    traffic(str(token.project_id), str(token.id), requests=4)
    traffic(str(token.project_id), str(token.id), status=500, duration_ms=2000)
    response = admin_client.get(DASHBOARD)
    html = response.content.decode()
    assert response.status_code == 200
    for chart in ("chart-requests", "chart-tokens", "chart-latency", "chart-projects"):
        assert f'id="{chart}"' in html
    assert "vendor/chart.umd.min.js" in html and "cdn" not in html.lower()
    data = json.loads(html.split('id="usage-data" type="application/json">')[1].split("</script>")[0])
    assert sum(data["series"]["requests"]) == 5 and sum(data["series"]["errors"]) == 1
    assert data["projects"][0]["project_name"] == "Acme"
    assert response.context["report"]["totals"]["prompt_tokens"] == 45
    assert token.obfuscated in html and "Acme" in html


def test_the_window_and_project_filters_narrow_the_numbers(admin_client, token_pair):
    token, _ = token_pair
    other = project_create(name="Other", api_key="sk-upstream-other-key-123456")
    traffic(str(token.project_id), str(token.id), requests=2)
    traffic(str(other.id), "", requests=3)
    three_days_ago = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    traffic(str(other.id), "", requests=7, hour=three_days_ago)
    day = admin_client.get(DASHBOARD, {"window": "24h"}).context["report"]
    assert day["totals"]["requests"] == 5
    only_acme = admin_client.get(DASHBOARD, {"window": "24h", "project": str(token.project_id)}).context["report"]
    assert only_acme["totals"]["requests"] == 2 and [p["project_name"] for p in only_acme["projects"]] == ["Acme"]
    month = admin_client.get(DASHBOARD, {"window": "30d"}).context["report"]
    assert month["window"].key == "30d"
    assert month["totals"]["requests"] == 12


def test_the_dashboard_is_for_staff_only(client, db):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rollups_cannot_be_added_or_changed_in_the_admin(admin_client):
    assert admin_client.get(DASHBOARD + "add/").status_code == 403


def test_the_chart_library_is_vendored_as_a_static_file():
    path = finders.find("vendor/chart.umd.min.js")
    assert path, "static/vendor/chart.umd.min.js is missing"
    with open(path, encoding="utf-8") as fh:
        assert "Chart.js v4" in fh.read(200)
    assert finders.find("usage/usage-dashboard.js")
