"""Authentication, request ids, unknown routes and wrong methods under /manage (as the reference answers them)."""

import uuid

import pytest
from django.test import Client

from tests.conftest import MANAGEMENT_TOKEN
from tests.manage.conftest import assert_json_error

ROUTES = [
    ("get", "/manage/projects"),
    ("post", "/manage/projects"),
    ("get", f"/manage/projects/{uuid.uuid4()}"),
    ("patch", f"/manage/projects/{uuid.uuid4()}"),
    ("delete", f"/manage/projects/{uuid.uuid4()}"),
    ("post", f"/manage/projects/{uuid.uuid4()}/tokens/revoke"),
    ("get", "/manage/tokens"),
    ("post", "/manage/tokens"),
    ("get", f"/manage/tokens/{uuid.uuid4()}"),
    ("patch", f"/manage/tokens/{uuid.uuid4()}"),
    ("delete", f"/manage/tokens/{uuid.uuid4()}"),
    ("get", "/manage/audit"),
    ("get", f"/manage/audit/{uuid.uuid4()}"),
    ("put", "/manage/projects"),  # auth is checked before the method, as in the reference
]


@pytest.mark.django_db
@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize(
    "authorization,message",
    [
        (None, "missing or invalid Authorization header"),
        ("Basic abc", "missing or invalid Authorization header"),
        (f"bearer {MANAGEMENT_TOKEN}", "missing or invalid Authorization header"),  # the prefix is case-sensitive
        ("Bearer ", "missing or invalid Authorization header"),
        ("Bearer wrong-token", "invalid management token"),
        (f"Bearer {MANAGEMENT_TOKEN}x", "invalid management token"),
    ],
)
def test_every_route_refuses_a_missing_or_wrong_management_token(method, path, authorization, message):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    client = Client(**headers)
    if method in ("get", "delete"):
        response = getattr(client, method)(path)
    else:
        response = getattr(client, method)(path, "{}", content_type="application/json")
    assert_json_error(response, 401, message)


@pytest.mark.django_db
def test_a_refused_call_writes_nothing(client):
    response = client.post("/manage/projects", {"name": "x", "api_key": "sk-1234567890abcdef"}, "application/json")
    assert response.status_code == 401
    from projects.models import Project

    assert not Project.objects.exists()


@pytest.mark.django_db
def test_request_and_correlation_ids_are_echoed(api):
    response = api.get("/manage/projects", HTTP_X_REQUEST_ID="req-123", HTTP_X_CORRELATION_ID="corr-456")
    assert response["X-Request-ID"] == "req-123"
    assert response["X-Correlation-ID"] == "corr-456"


@pytest.mark.django_db
def test_request_and_correlation_ids_are_generated_when_absent_even_on_errors(client):
    response = client.get("/manage/projects")
    assert response.status_code == 401
    assert uuid.UUID(response["X-Request-ID"]) and uuid.UUID(response["X-Correlation-ID"])


@pytest.mark.parametrize("path", ["/manage/nothing-here", "/manage/projects-x", "/manage/", "/manage/cache"])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_unknown_routes_are_json_404s_without_authentication(client, path, method):
    response = getattr(client, method)(path)
    assert_json_error(response, 404, "404 page not found")
    assert response["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/manage/projects/a%0Ab", "/manage/tokens/a%0Ab", "/manage/audit/a%0Ab"])
def test_ids_with_a_newline_reach_their_view(api, path):
    assert api.patch(path, {"name": "x"}).status_code in (400, 404, 405)
    assert api.get(path).status_code in (400, 404)
    assert api.get(path)["Content-Type"] == "application/json"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("put", "/manage/projects", "GET, POST"),
        ("delete", "/manage/projects", "GET, POST"),
        ("head", "/manage/projects", "GET, POST"),
        ("options", "/manage/projects", "GET, POST"),
        ("post", f"/manage/projects/{uuid.uuid4()}", "GET, PATCH, DELETE"),
        ("put", f"/manage/projects/{uuid.uuid4()}", "GET, PATCH, DELETE"),
        ("get", f"/manage/projects/{uuid.uuid4()}/tokens/revoke", "POST"),
        ("put", "/manage/tokens", "GET, POST"),
        ("post", f"/manage/tokens/{uuid.uuid4()}", "GET, PATCH, DELETE"),
        ("post", "/manage/audit", "GET"),
        ("delete", f"/manage/audit/{uuid.uuid4()}", "GET"),
    ],
)
def test_wrong_methods_are_json_405s_with_an_allow_header(api, method, path, allow):
    response = getattr(api.client, method)(path)
    assert response.status_code == 405
    assert response["Allow"] == allow
    if method != "head":
        assert_json_error(response, 405, "method not allowed")


def test_the_openapi_schema_is_public_json(client):
    response = client.get("/manage/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["ManagementToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The MANAGEMENT_TOKEN of this deployment.",
    }


def test_the_openapi_schema_documents_every_route_and_status(client):
    paths = client.get("/manage/openapi.json").json()["paths"]
    documented = {(path, method): set(op["responses"]) for path, ops in paths.items() for method, op in ops.items()}
    expected = {
        ("/manage/projects", "get"): {"200", "401", "500"},
        ("/manage/projects", "post"): {"201", "400", "401", "409", "413", "500"},
        ("/manage/projects/{project_id}", "get"): {"200", "400", "401", "404"},
        ("/manage/projects/{project_id}", "patch"): {"200", "400", "401", "404", "409", "413", "500"},
        ("/manage/projects/{project_id}", "delete"): {"401", "405"},
        ("/manage/projects/{project_id}/tokens/revoke", "post"): {"200", "400", "401", "404", "500"},
        ("/manage/tokens", "get"): {"200", "401", "500"},
        ("/manage/tokens", "post"): {"200", "400", "401", "403", "404", "413", "500"},
        ("/manage/tokens/{token_id}", "get"): {"200", "400", "401", "404"},
        ("/manage/tokens/{token_id}", "patch"): {"200", "400", "401", "404", "413", "500"},
        ("/manage/tokens/{token_id}", "delete"): {"204", "400", "401", "404", "500"},
        ("/manage/audit", "get"): {"200", "400", "401"},
        ("/manage/audit/{event_id}", "get"): {"200", "400", "401", "404"},
    }
    expected = {key: codes | {"429"} for key, codes in expected.items()}  # failed-auth throttling, on every route
    assert {key: documented.get(key) for key in expected} == expected
    assert all(op["security"] == [{"ManagementToken": []}] for ops in paths.values() for op in ops.values())


@pytest.mark.parametrize("path", ["/does-not-exist", "/v2/models", "/", "/health/x", "/manage"])
@pytest.mark.parametrize("debug", [False, True])
def test_unknown_paths_outside_manage_and_v1_are_json_404s(client, settings, path, debug):
    settings.DEBUG = debug
    response = client.post(path) if path == "/v2/models" else client.get(path)
    assert_json_error(response, 404, "404 page not found")


@pytest.mark.django_db
def test_the_admin_keeps_its_own_pages_for_unknown_paths(admin_client):
    assert admin_client.get("/admin")["Location"] == "/admin/"
    response = admin_client.get("/admin/does-not-exist/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
