"""One service error type: the services name a kind, the management API chooses the status."""

import pytest

from llmproxy import services
from llmproxy.manage.errors import STATUS_BY_KIND, from_service_error
from llmproxy.services import ServiceError


def test_every_kind_of_service_error_has_an_http_status():
    assert set(STATUS_BY_KIND) == set(services.KINDS)


@pytest.mark.parametrize(
    ("kind", "status"), [("invalid", 400), ("forbidden", 403), ("not_found", 404), ("conflict", 409)]
)
def test_the_api_answers_a_service_error_with_the_status_of_its_kind(kind, status):
    api_error = from_service_error(ServiceError("what went wrong", kind=kind))

    assert (api_error.status_code, api_error.message, api_error.extra) == (status, "what went wrong", {})


def test_a_service_error_code_goes_into_the_answer_and_an_already_audited_one_is_not_audited_again():
    api_error = from_service_error(
        ServiceError(
            "cannot create tokens for inactive projects", kind="forbidden", code="project_inactive", audited=True
        )
    )

    assert api_error.extra == {"code": "project_inactive"}
    assert api_error.audit_details is None


def test_an_unknown_kind_is_refused_when_the_error_is_made():
    with pytest.raises(ValueError, match="unknown service error kind 'gone'"):
        ServiceError("x", kind="gone")
