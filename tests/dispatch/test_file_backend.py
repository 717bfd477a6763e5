import json
from datetime import UTC, datetime

import pytest

from dispatch.backends import BackendConfigError, DeliveryError, create_backend
from dispatch.transform import event_to_payload
from tests.dispatch.factories import chat_event, stream_event


def test_each_payload_becomes_one_json_line_appended_to_the_file(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    backend = create_backend("file", endpoint=str(path), cli=True)
    events, at = [chat_event(), stream_event()], datetime.now(UTC)
    backend.send([backend.payload(e, at) for e in events[:1]])
    backend.send([backend.payload(e, at) for e in events[1:]])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [event_to_payload(e, received_at=at) for e in events]
    assert lines[0]["output"]["choices"][0]["message"]["content"] == "Hello from upstream"
    assert lines[1]["output"]["choices"][0]["message"]["content"] == "Hello from upstream"
    assert lines[1]["tokensUsage"] == {"prompt": 9, "completion": 3}


def test_the_cli_file_service_without_a_path_is_a_start_up_error_naming_the_flag(settings):
    settings.DISPATCHER_ENDPOINT = ""
    with pytest.raises(BackendConfigError, match="--endpoint"):
        create_backend("file", cli=True)


def test_celery_uses_dispatch_file_path(settings, tmp_path):
    settings.DISPATCH_FILE_PATH = str(tmp_path / "celery.jsonl")
    assert create_backend("file").describe() == str(tmp_path / "celery.jsonl")


def test_a_write_error_is_a_transient_delivery_error(tmp_path):
    backend = create_backend("file", endpoint=str(tmp_path))  # a directory cannot be appended to
    with pytest.raises(DeliveryError) as caught:
        backend.send([{"a": 1}])
    assert not caught.value.permanent
