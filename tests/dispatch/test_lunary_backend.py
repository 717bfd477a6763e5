from datetime import UTC, datetime

import pytest

from dispatch.backends import BackendConfigError, DeliveryError, create_backend
from dispatch.transform import run_id
from tests.dispatch.factories import CHAT_REQUEST, chat_event, stream_event
from tests.support.fake_services import LUNARY_KEY, TRANSIENT_EVENT_ERROR

RECEIVED = datetime(2025, 11, 27, 10, 0, 1, 234000, tzinfo=UTC)


@pytest.fixture
def lunary(fake_lunary):
    backend = create_backend("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    yield backend
    backend.close()


def test_a_chat_completion_is_stored_as_a_complete_run(lunary, fake_lunary):
    event = chat_event(request_id="req-42")
    lunary.send([lunary.payload(event, RECEIVED)])
    body = fake_lunary.requests[-1].json()
    assert [(e["event"], e["runId"]) for e in body["events"]] == [("start", run_id(event)), ("end", run_id(event))]
    start, end = body["events"]
    assert start["timestamp"] == "2025-11-27T10:00:00.000Z" and end["timestamp"] == "2025-11-27T10:00:01.234Z"
    assert "output" not in start and "tokensUsage" not in start
    run = fake_lunary.runs[run_id(event)]
    assert run["status"] == "success"
    assert run["name"] == "gpt-4o-mini"
    assert run["input"] == CHAT_REQUEST["messages"]
    assert run["params"] == {"temperature": 0.2}
    assert run["output"] == {"role": "assistant", "content": "Hello from upstream"}
    assert (run["promptTokens"], run["completionTokens"]) == (9, 3)
    assert run["metadata"]["requestId"] == "req-42"
    assert fake_lunary.violations == []


def test_a_streamed_completion_is_stored_with_the_merged_message_and_usage(lunary, fake_lunary):
    event = stream_event()
    lunary.send([lunary.payload(event)])
    run = fake_lunary.runs[run_id(event)]
    assert run["output"] == {"role": "assistant", "content": "Hello from upstream"}
    assert (run["promptTokens"], run["completionTokens"]) == (9, 3)
    assert run["params"]["stream"] is True
    assert run["metadata"]["stream"] is True
    assert fake_lunary.violations == []


def test_one_post_carries_the_whole_batch(lunary, fake_lunary):
    events = [chat_event() for _ in range(5)]
    lunary.send([lunary.payload(e) for e in events])
    assert len(fake_lunary.requests) == 1
    assert len(fake_lunary.requests[0].json()["events"]) == 10
    assert {run_id(e) for e in events} <= set(fake_lunary.runs)


def test_an_upstream_error_becomes_an_error_event(lunary, fake_lunary):
    event = chat_event(status=429, response_body=b'{"error": {"message": "Rate limit reached"}}')
    lunary.send([lunary.payload(event)])
    run = fake_lunary.runs[run_id(event)]
    assert run["status"] == "error"
    assert run["error"] == {"message": "429: Rate limit reached"}
    assert fake_lunary.violations == []


def test_a_redelivered_run_is_accepted_without_a_second_run(lunary, fake_lunary):
    event = chat_event()
    lunary.send([lunary.payload(event)])
    lunary.send([lunary.payload(event)])  # the duplicate `start` is refused by Lunary: the run is stored
    assert list(fake_lunary.runs) == [run_id(event)]


def test_a_refused_event_fails_only_its_own_payload_and_is_retried(lunary, fake_lunary):
    good = lunary.payload(chat_event())
    bad = {
        "runId": "7d9a3c1e-2b4f-4a6e-8c5d-0e1f2a3b4c5d",
        "events": [{"event": "start", "runId": "7d9a3c1e-2b4f-4a6e-8c5d-0e1f2a3b4c5d"}],
    }
    with pytest.raises(DeliveryError) as caught:
        lunary.send([good, bad])
    assert list(caught.value.failures) == [1]
    assert not caught.value.failures[1].permanent  # only a duplicate run id is final, and that one is stored
    assert "type" in str(caught.value.failures[1])
    assert good["runId"] in fake_lunary.runs


def test_an_unknown_key_is_permanent_and_an_outage_transient(fake_lunary):
    wrong = create_backend(
        "lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key="00000000-0000-4000-8000-000000000000"
    )
    with pytest.raises(DeliveryError) as caught:
        wrong.send([wrong.payload(chat_event())])
    assert caught.value.permanent and "401" in str(caught.value)
    right = create_backend("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    fake_lunary.fail_next(status=503)
    with pytest.raises(DeliveryError) as caught:
        right.send([right.payload(chat_event())])
    assert not caught.value.permanent


def test_a_missing_key_is_a_start_up_error_naming_the_flag(settings):
    settings.LUNARY_API_KEY = settings.LLM_PROXY_API_KEY = ""
    with pytest.raises(BackendConfigError, match="--api-key.*LUNARY_API_KEY"):
        create_backend("lunary", cli=True)


def test_the_key_comes_from_lunary_api_key_then_llm_proxy_api_key(settings):
    settings.LUNARY_API_KEY, settings.LLM_PROXY_API_KEY = "", "generic-key"
    assert create_backend("lunary").api_key == "generic-key"
    settings.LUNARY_API_KEY = "lunary-key"
    backend = create_backend("lunary")
    assert backend.api_key == "lunary-key"
    assert backend.endpoint == "https://api.lunary.ai/v1/runs/ingest"


def test_a_transient_per_event_failure_in_a_200_answer_is_not_permanent(lunary, fake_lunary):
    fake_lunary.fail_events_next(1)
    with pytest.raises(DeliveryError) as caught:
        lunary.send([lunary.payload(chat_event())])
    assert list(caught.value.failures) == [0]
    assert not caught.value.failures[0].permanent
    assert TRANSIENT_EVENT_ERROR in str(caught.value.failures[0])


def test_a_refused_request_is_not_sent_to_lunary(lunary):
    refused = chat_event(status=401, request_body=None, response_body=None)
    refused.response_headers["X-Proxy-Refused"] = ["unauthorized"]
    assert lunary.payload(refused) is None
