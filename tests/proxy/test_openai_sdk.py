"""The official openai SDK against the proxy on a real socket."""

import time

import openai
import pytest

from tests.support.fake_upstream import sse_chunks


@pytest.fixture
def client(proxy_server, token_pair):
    return openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=token_pair[1], max_retries=0, timeout=10)


def test_non_streaming_chat_goes_through_with_the_project_key(client, proxy_server):
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from upstream"
    sent = proxy_server.upstream.requests[-1]
    assert sent.headers["Authorization"] == "Bearer sk-upstream-acme-key-1234567890"


def test_streaming_chat_reaches_the_client_event_by_event(client, proxy_server):
    events = sse_chunks(("Hello", " there"))
    proxy_server.upstream.sse("/v1/chat/completions", events, delays=[0, 1.5, 0, 0, 0])
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    first = next(iter(stream))
    first_at = time.monotonic() - started
    rest = list(stream)
    assert first.choices[0].delta.content == "Hello"
    assert first_at < 1.0
    assert time.monotonic() - started >= 1.5
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == " there"


def test_models_list(client):
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]


def test_bad_token_is_an_authentication_error(proxy_server):
    bad = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key="sk-" + "A" * 22, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()
    assert caught.value.status_code == 401
    assert caught.value.response.json() == {"error": "Token not found", "code": "token_not_found"}


def test_quota_exhausted_is_a_rate_limit_error(proxy_server, project):
    from tokens.services import token_create

    _, secret = token_create(project=project, duration_minutes=5, max_requests=1)
    limited = openai.OpenAI(base_url=proxy_server.url + "/v1", api_key=secret, max_retries=0)
    limited.models.list()
    with pytest.raises(openai.RateLimitError):
        limited.models.list()


def test_inactive_project_is_a_permission_error(client, project):
    from projects.services import project_deactivate

    project_deactivate(project=project)
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()
