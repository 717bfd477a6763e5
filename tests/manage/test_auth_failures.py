"""Failed management authentications: audited one record per client IP per window, and throttled with 429."""

import time

import pytest
from django.test import Client

from audit.models import AuditEvent
from llmproxy.manage import auth_failures
from tests.conftest import MANAGEMENT_TOKEN
from tests.manage.conftest import assert_json_error
from tests.support.redis_server import OwnRedis
from tests.support.waiting import wait_until

GOOD = {"HTTP_AUTHORIZATION": f"Bearer {MANAGEMENT_TOKEN}"}
BAD = {"HTTP_AUTHORIZATION": "Bearer not-the-token"}


def fail(times: int, **meta):
    client = Client()
    return [client.get("/manage/projects", **BAD, **meta).status_code for _ in range(times)]


def test_many_failures_from_one_address_are_one_audit_record_and_write_nothing_per_request(
    audit_trail, django_assert_num_queries
):
    assert fail(1) == [401]
    with django_assert_num_queries(0):
        assert fail(9) == [401] * 9
    rows, lines = audit_trail("auth.failure")
    assert len(rows) == 1 and len(lines) == 1
    assert (rows[0].outcome, rows[0].actor, rows[0].client_ip) == ("failure", "anonymous", "127.0.0.1")
    assert rows[0].metadata["count"] == 1 and rows[0].metadata["reason"] == "invalid management token"
    assert "not-the-token" not in str(rows[0].metadata) and "not-the-token" not in str(lines)


def test_the_window_total_is_written_into_its_record_once_the_window_has_ended(audit_trail, settings):
    settings.MANAGEMENT_AUTH_FAILURE_WINDOW = 1.0
    wait_until(lambda: time.time() % 1.0 < 0.3)  # the five failures below fall inside one window
    assert fail(5) == [401] * 5
    first = AuditEvent.objects.get(action="auth.failure")

    def total_written() -> bool:
        Client().get("/manage/projects", **GOOD)  # any later management request writes ended windows
        return AuditEvent.objects.get(id=first.id).metadata["count"] == 5

    wait_until(total_written, timeout=5)
    rows, lines = audit_trail("auth.failure")
    assert len(rows) == 1 and lines[-1]["details"]["count"] == 5


def test_each_address_has_its_own_record(audit_trail):
    fail(2)
    fail(2, REMOTE_ADDR="192.0.2.20")
    rows, _ = audit_trail("auth.failure")
    assert sorted(row.client_ip for row in rows) == ["127.0.0.1", "192.0.2.20"]


@pytest.mark.django_db
def test_an_address_over_the_limit_gets_429_with_retry_after_even_with_the_right_token(settings):
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 3
    assert fail(3) == [401, 401, 401]
    for headers in (BAD, GOOD, {}):
        response = Client().get("/manage/projects", **headers)
        assert_json_error(response, 429, "too many failed management authentications from this address")
        assert 1 <= int(response["Retry-After"]) <= 60
        assert response.json()["retry_after_seconds"] == int(response["Retry-After"])


@pytest.mark.django_db
def test_another_address_is_not_throttled(settings):
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 2
    fail(2)
    assert Client().get("/manage/projects", **GOOD).status_code == 429
    assert Client().get("/manage/projects", REMOTE_ADDR="192.0.2.30", **GOOD).status_code == 200


@pytest.mark.django_db
def test_the_right_token_works_again_once_the_window_has_passed(settings):
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 2
    settings.MANAGEMENT_AUTH_FAILURE_WINDOW = 1.0
    fail(2)
    wait_until(lambda: Client().get("/manage/projects", **GOOD).status_code == 200, timeout=5)


@pytest.mark.django_db
def test_a_forwarded_address_from_an_untrusted_peer_cannot_dodge_the_throttle(settings):
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = ["10.9.0.0/16"]
    fail(1, HTTP_X_FORWARDED_FOR="198.51.100.1")
    fail(1, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert Client().get("/manage/projects", HTTP_X_FORWARDED_FOR="198.51.100.3", **GOOD).status_code == 429


@pytest.fixture
def own_redis():
    server = OwnRedis().start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_with_redis_the_count_is_shared_by_every_process(settings, own_redis):
    settings.REDIS_CONFIGURED = True
    settings.REDIS_URL = own_redis.url
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 3
    fail(3)
    keys = own_redis.client().keys("llmproxy:manage:auth-failures:127.0.0.1:*")
    assert len(keys) == 1 and own_redis.client().get(keys[0]) in (b"3", "3")
    assert 0 < own_redis.client().ttl(keys[0]) <= 61
    auth_failures.reset_for_tests()  # as another process sees it: nothing counted locally
    assert Client().get("/manage/projects", **GOOD).status_code == 429


@pytest.mark.django_db
def test_when_redis_fails_the_throttle_counts_in_the_process(settings):
    settings.REDIS_CONFIGURED = True
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.MANAGEMENT_AUTH_FAILURE_LIMIT = 2
    assert fail(2) == [401, 401]
    assert Client().get("/manage/projects", **GOOD).status_code == 429
