from datetime import UTC, datetime

import pytest

from dispatch.backends import BackendConfigError, DeliveryError, create_backend
from dispatch.transform import run_id
from tests.dispatch.factories import STREAM_REQUEST, chat_event, stream_event
from tests.support.fake_services import HELICONE_KEY
from tests.support.fake_upstream import CHAT_COMPLETION, sse_chunks


def helicone_backend(server, key=HELICONE_KEY, path="/oai/v1/log"):
    return create_backend("helicone", endpoint=f"{server.url}{path}", api_key=key)


def test_a_chat_completion_is_logged_with_openai_pricing_and_usage(fake_helicone):
    backend = helicone_backend(fake_helicone)
    event = chat_event(request_id="req-9")
    received = datetime(2025, 11, 27, 10, 0, 1, 234000, tzinfo=UTC)
    backend.send([backend.payload(event, received)])
    [log] = fake_helicone.logs
    assert log["requestId"] == run_id(event)
    assert log["provider"] == "OPENAI"
    assert log["body"] == CHAT_COMPLETION and log["usage"]["prompt_tokens"] == 9
    assert log["status"] == 200
    assert log["end"] - log["start"] == 1234
    assert log["properties"]["proxy-request-id"] == "req-9"
    assert fake_helicone.violations == []


def test_a_streamed_completion_is_logged_as_raw_sse_with_time_to_first_token(fake_helicone):
    backend = helicone_backend(fake_helicone)
    received = datetime(2025, 11, 27, 10, 0, 0, 950000, tzinfo=UTC)  # started 10:00:00.000, first chunk at .180
    event = stream_event()
    backend.send([backend.payload(event, received)])
    [log] = fake_helicone.logs
    body = fake_helicone.requests[0].json()
    assert body["providerRequest"]["json"] == STREAM_REQUEST
    assert body["providerResponse"]["json"] == {}
    assert body["providerResponse"]["textBody"] == "".join(sse_chunks())
    assert log["isStream"] and log["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert log["ttft"] == 180
    assert fake_helicone.violations == []


def test_each_event_is_its_own_post(fake_helicone):
    backend = helicone_backend(fake_helicone)
    events = [chat_event(), stream_event(), chat_event()]
    backend.send([backend.payload(e) for e in events])
    assert len(fake_helicone.requests) == 3
    assert set(fake_helicone.by_request_id()) == {run_id(e) for e in events}


def test_a_200_with_an_error_body_is_a_permanent_failure(fake_helicone):
    backend = helicone_backend(fake_helicone, key="sk-helicone-zzz1234-def5678-ghi9012-jkl3456")
    with pytest.raises(DeliveryError) as caught:
        backend.send([backend.payload(chat_event())])
    assert caught.value.failures[0].permanent
    assert "Auth failed" in str(caught.value)
    assert fake_helicone.logs == []


def test_an_outage_fails_the_rest_of_the_batch_transiently(fake_helicone):
    backend = helicone_backend(fake_helicone)
    fake_helicone.fail_next(status=502)
    with pytest.raises(DeliveryError) as caught:
        backend.send([backend.payload(chat_event()) for _ in range(3)])
    assert sorted(caught.value.failures) == [0, 1, 2]
    assert not any(f.permanent for f in caught.value.failures.values())
    assert len(fake_helicone.requests) == 1


def test_a_missing_key_is_a_start_up_error_naming_the_flag(settings):
    settings.HELICONE_API_KEY = settings.LLM_PROXY_API_KEY = ""
    with pytest.raises(BackendConfigError, match="--api-key.*HELICONE_API_KEY"):
        create_backend("helicone", cli=True)


def test_the_default_endpoint_lets_helicone_price_openai_calls(settings):
    settings.HELICONE_API_KEY = HELICONE_KEY
    assert create_backend("helicone").endpoint == "https://api.worker.helicone.ai/oai/v1/log"


def test_a_refused_request_is_not_sent_to_helicone(fake_helicone):
    backend = create_backend("helicone", endpoint=f"{fake_helicone.url}/oai/v1/log", api_key=HELICONE_KEY)
    refused = chat_event(status=404, request_body=None, response_body=None)
    refused.response_headers["X-Proxy-Refused"] = ["not_found"]
    assert backend.payload(refused) is None
    assert backend.payload(chat_event()) is not None
    backend.close()
