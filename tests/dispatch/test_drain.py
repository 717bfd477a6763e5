import json
import threading
import time

import pytest
from django.core.management import call_command

from dispatch.backends import create_backend
from dispatch.backends.memory import MemoryBackend
from dispatch.drain import Drainer, DrainOptions
from dispatch.runner import build_drainer
from dispatch.streams import DeadLetters, message_time
from dispatch.transform import iso, run_id
from instrumentation.bus import get_consumer
from tests.dispatch.factories import chat_event, stream_event
from tests.support.fake_services import HELICONE_KEY, LUNARY_KEY, TRANSIENT_EVENT_ERROR
from tests.support.waiting import wait_until


def drainer_for(backend, *, service="memory", consumer="c1", batch_size=100, claim_seconds=0.3, batch_wait=0.0):
    options = DrainOptions(
        service=service,
        group=f"llm-proxy-dispatchers-{service}",
        consumer=consumer,
        batch_size=batch_size,
        block_seconds=0.1,
        claim_seconds=claim_seconds,
        retry_base=0.01,
        batch_wait=batch_wait,
    )
    return Drainer(backend, get_consumer(), DeadLetters(), options).start()


def test_events_reach_the_file_and_are_acknowledged(stream, tmp_path):
    path = tmp_path / "events.jsonl"
    drainer = build_drainer("file", cli=True, endpoint=str(path))
    events = [chat_event(), stream_event(), chat_event()]
    stream.publish(*events)
    assert drainer.run(until_idle=True) == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["runId"] for line in lines] == [run_id(e) for e in events]
    assert stream.pending("llm-proxy-dispatchers-file") == 0


def test_batches_hold_at_most_batch_size_events(stream):
    backend = MemoryBackend()
    stream.publish(*[chat_event() for _ in range(10)])
    drainer_for(backend, batch_size=4).run(until_idle=True)
    assert [len(batch) for batch in backend.batches] == [4, 4, 2]


def test_a_partial_batch_waits_for_more_events_then_goes_out(stream):
    backend = MemoryBackend()
    stream.publish(*[chat_event() for _ in range(3)])
    drainer_for(backend, batch_size=5, batch_wait=0.3).run(until_idle=True)
    assert [len(batch) for batch in backend.batches] == [3]


def test_a_transient_failure_is_retried_then_delivered_once(stream):
    backend = MemoryBackend()
    backend.fail_next(2)
    events = [chat_event() for _ in range(3)]
    stream.publish(*events)
    drainer_for(backend).run(until_idle=True)
    assert backend.attempts == 3
    assert [p["runId"] for p in backend.sent] == [run_id(e) for e in events]
    assert stream.pending("llm-proxy-dispatchers-memory") == 0
    assert stream.dead_letters() == []


def test_a_permanent_failure_goes_to_the_dead_letter_stream_and_is_acknowledged(stream):
    backend = MemoryBackend()
    backend.fail_next(permanent=True, message="400 bad payload")
    event = chat_event()
    stream.publish(event)
    drainer_for(backend).run(until_idle=True)
    [dead] = stream.dead_letters()
    assert dead["service"] == "memory"
    assert dead["data"] == event.to_json()
    assert "400 bad payload" in dead["reason"]
    assert backend.attempts == 1
    assert stream.pending("llm-proxy-dispatchers-memory") == 0


def test_events_that_exhaust_their_retries_are_dead_lettered(stream):
    backend = MemoryBackend()
    backend.fail_next(4, message="503 service unavailable")
    stream.publish(chat_event())
    drainer_for(backend).run(until_idle=True)
    assert backend.attempts == 4  # the first try and 3 retries
    [dead] = stream.dead_letters()
    assert dead["reason"].startswith("gave up after 4 attempts") and "503" in dead["reason"]


def test_only_the_refused_runs_of_a_lunary_batch_are_dead_lettered(stream, fake_lunary):
    backend = create_backend("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    good, refused = chat_event(), chat_event()
    stream.publish(good, refused)
    backend.payload = _with_bad_usage_for(backend.payload, run_id(refused))
    drainer_for(backend, service="lunary").run(until_idle=True)
    [dead] = stream.dead_letters()
    assert json.loads(dead["data"])["RequestID"] == refused.request_id
    assert "integer" in dead["reason"]
    assert fake_lunary.runs[run_id(good)]["status"] == "success"


def _with_bad_usage_for(payload, target):
    def build(event, received_at=None):
        result = payload(event, received_at)
        if result["runId"] == target:
            result["events"][1]["tokensUsage"] = {"prompt": "nine", "completion": 3}
        return result

    return build


def test_events_other_than_post_and_unparseable_entries_do_not_block_the_stream(stream):
    backend = MemoryBackend()
    stream.publish(chat_event(method="GET"), chat_event())
    stream.publish_raw("{not json")
    drainer_for(backend).run(until_idle=True)
    assert len(backend.sent) == 1
    [dead] = stream.dead_letters()
    assert dead["data"] == "{not json" and dead["reason"].startswith("unparseable event")
    assert stream.pending("llm-proxy-dispatchers-memory") == 0


def test_after_a_restart_the_consumer_delivers_its_own_pending_entries_first(stream):
    consumer = get_consumer()
    consumer.ensure_group("llm-proxy-dispatchers-memory")
    stream.publish(*[chat_event() for _ in range(3)])
    taken = consumer.read("llm-proxy-dispatchers-memory", "c1", 10, None)  # read, then "crashed" before the ack
    assert len(taken) == 3
    backend = MemoryBackend()
    drainer_for(backend, consumer="c1", claim_seconds=60).run(until_idle=True)
    assert len(backend.sent) == 3
    assert stream.pending("llm-proxy-dispatchers-memory") == 0


def test_entries_left_pending_by_a_crashed_consumer_are_claimed_after_the_claim_time(stream):
    consumer = get_consumer()
    consumer.ensure_group("llm-proxy-dispatchers-memory")
    stream.publish(*[chat_event() for _ in range(3)])
    consumer.read("llm-proxy-dispatchers-memory", "crashed", 10, None)
    backend = MemoryBackend()
    survivor = drainer_for(backend, consumer="survivor", claim_seconds=0.3)
    survivor.run(until_idle=True)
    assert backend.sent == []  # not idle long enough yet
    time.sleep(0.35)  # deliberate: past the 0.3 s claim time, so the crashed reader's entries are idle enough
    survivor.last_claim = 0
    survivor.run(until_idle=True)
    assert len(backend.sent) == 3
    assert stream.pending("llm-proxy-dispatchers-memory") == 0


def test_each_service_receives_every_event(stream, tmp_path):
    memory = MemoryBackend()
    file_drainer = build_drainer("file", cli=True, endpoint=str(tmp_path / "fan.jsonl"))
    events = [chat_event() for _ in range(4)]
    stream.publish(*events)
    file_drainer.run(until_idle=True)
    drainer_for(memory).run(until_idle=True)
    assert len((tmp_path / "fan.jsonl").read_text().splitlines()) == 4
    assert [p["runId"] for p in memory.sent] == [run_id(e) for e in events]


def test_a_replayed_dead_letter_is_delivered_again_to_its_service_only(stream, tmp_path):
    failing = MemoryBackend()
    failing.fail_next(permanent=True)
    event = chat_event()
    [stream_id] = stream.publish(event)
    file_drainer = build_drainer("file", cli=True, endpoint=str(tmp_path / "other.jsonl"))
    file_drainer.run(until_idle=True)
    drainer_for(failing).run(until_idle=True)
    assert len(stream.dead_letters()) == 1

    call_command("dispatch_replay", "--service", "memory")
    assert stream.dead_letters() == []
    drainer_for(failing).run(until_idle=True)
    file_drainer.run(until_idle=True)
    assert [p["runId"] for p in failing.sent] == [run_id(event)]
    assert failing.sent[0]["timestamp"] == iso(message_time(stream_id))  # the original time, not the replay's
    assert len((tmp_path / "other.jsonl").read_text().splitlines()) == 1  # the file service is not sent it twice


def test_batch_size_sets_how_many_runs_go_in_one_lunary_post(stream, fake_lunary):
    lunary = f"{fake_lunary.url}/v1/runs/ingest"
    drainer = build_drainer("lunary", cli=True, endpoint=lunary, api_key=LUNARY_KEY, batch_size=3)
    drainer.options.batch_wait = 0.0
    stream.publish(*[chat_event() for _ in range(7)])
    drainer.run(until_idle=True)
    assert [len(r.json()["events"]) for r in fake_lunary.requests] == [6, 6, 2]  # a start and an end per run
    assert fake_lunary.violations == []


def test_lunary_and_helicone_each_receive_every_event_once_despite_an_outage(stream, fake_lunary, fake_helicone):
    lunary = build_drainer("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    helicone = build_drainer("helicone", endpoint=f"{fake_helicone.url}/oai/v1/log", api_key=HELICONE_KEY)
    events = [chat_event(), stream_event(), chat_event()]
    stream.publish(*events)
    fake_lunary.fail_next(status=503)
    fake_helicone.fail_next(2, status=502)
    lunary.run(until_idle=True)
    helicone.run(until_idle=True)
    assert {run_id(e) for e in events} == set(fake_lunary.runs)
    assert all(run["status"] == "success" for run in fake_lunary.runs.values())
    assert {rid: len(logs) for rid, logs in fake_helicone.by_request_id().items()} == {run_id(e): 1 for e in events}
    assert fake_lunary.violations == [] and fake_helicone.violations == []
    assert stream.dead_letters() == []


def test_with_the_in_memory_bus_the_file_service_runs_in_process(tmp_path):
    from dispatch.inprocess import InProcessConsumer, LoggedDeadLetters

    consumer = InProcessConsumer(capacity=2)
    backend = create_backend("file", endpoint=str(tmp_path / "in-process.jsonl"))
    events = [chat_event(), stream_event(), chat_event()]
    for event in events:
        consumer.offer(event)  # what the bus subscription does; the third does not fit
    options = DrainOptions(service="file", group="in-process", consumer="in-process", block_seconds=0.05)
    Drainer(backend, consumer, LoggedDeadLetters(), options).run(until_idle=True)
    lines = [json.loads(line) for line in (tmp_path / "in-process.jsonl").read_text().splitlines()]
    assert [line["runId"] for line in lines] == [run_id(e) for e in events[:2]]
    assert consumer.dropped == 1


# --- hostile input: one event never stalls the rest ----------------------------------------------------


def _poisoned(payload: dict) -> bool:
    return payload["metadata"]["request_id"].startswith("poison")


@pytest.mark.parametrize(
    "error",
    [
        TypeError("Object of type bytes is not JSON serializable"),
        ValueError("Out of range float values are not JSON compliant"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_event_that_makes_the_backend_raise_is_dead_lettered_alone_and_the_rest_delivered(stream, error):
    backend = MemoryBackend()
    backend.raise_on(_poisoned, error)
    events = [chat_event() for _ in range(3)] + [chat_event(request_id="poison-1")] + [chat_event() for _ in range(4)]
    stream.publish(*events)
    drainer = drainer_for(backend)
    drainer.run(until_idle=True)
    assert [p["runId"] for p in backend.sent] == [run_id(e) for e in events if e.request_id != "poison-1"]
    [dead] = stream.dead_letters()
    assert json.loads(dead["data"])["RequestID"] == "poison-1"
    assert dead["reason"].startswith(f"failed: {type(error).__name__}: ")
    assert stream.pending("llm-proxy-dispatchers-memory") == 0
    assert (drainer.delivered, drainer.dead) == (7, 1)
    assert backend.attempts <= 1 + 2 * 3  # halving 8 events finds the bad one in three rounds of two sends


def test_an_exception_other_than_a_delivery_error_is_not_retried(stream):
    backend = MemoryBackend()
    backend.raise_on(_poisoned, RuntimeError("encoder bug"))
    stream.publish(chat_event(request_id="poison-2"))
    drainer_for(backend).run(until_idle=True)
    assert backend.attempts == 1
    [dead] = stream.dead_letters()
    assert dead["reason"] == "failed: RuntimeError: encoder bug"


def test_an_outage_met_while_isolating_a_bad_event_is_retried_as_usual(stream):
    backend = MemoryBackend()
    backend.raise_on(_poisoned, TypeError("bad value"))
    events = [chat_event(), chat_event(request_id="poison-3"), chat_event()]
    stream.publish(*events)
    drainer = drainer_for(backend)
    backend.fail_next(2, message="503 while isolating")  # the first half fails after the batch raised TypeError
    original_send = backend.send
    calls = []

    def send(payloads):
        calls.append(len(payloads))
        if len(calls) == 1:  # the whole batch raises first, then the halves meet the outage
            raise TypeError("bad value")
        return original_send(payloads)

    backend.send = send
    drainer.run(until_idle=True)
    assert sorted(p["runId"] for p in backend.sent) == sorted(run_id(e) for e in events if e is not events[1])
    [dead] = stream.dead_letters()
    assert "TypeError" in dead["reason"]
    assert stream.pending("llm-proxy-dispatchers-memory") == 0


def _deliver_times(consumer, group: str, times: int) -> None:
    """Read the entry, then claim it `times - 1` more times, as consumers that die on it each time would."""
    consumer.read(group, "crashed-0", 10, None)
    for attempt in range(1, times):
        time.sleep(0.002)  # deliberate: the entry must be idle at least the 1 ms the claim asks for
        assert consumer.claim(group, f"crashed-{attempt}", 1, 10)


def test_an_entry_delivered_more_than_max_deliveries_times_is_dead_lettered_without_another_try(stream):
    group = "llm-proxy-dispatchers-memory"
    consumer = get_consumer()
    consumer.ensure_group(group)
    event = chat_event()
    stream.publish(event)
    _deliver_times(consumer, group, 5)  # five readers crashed on it; the survivor's claim is the sixth delivery
    time.sleep(0.02)  # deliberate: past the survivor's 0.01 s claim time
    backend = MemoryBackend()
    drainer_for(backend, consumer="survivor", claim_seconds=0.01).run(until_idle=True)
    assert backend.attempts == 0
    [dead] = stream.dead_letters()
    assert dead["data"] == event.to_json()
    assert dead["reason"] == "delivered 6 times without an ack (DISPATCH_MAX_DELIVERIES=5)"
    assert stream.pending(group) == 0


def test_an_entry_delivered_up_to_max_deliveries_times_is_still_tried(stream):
    group = "llm-proxy-dispatchers-memory"
    consumer = get_consumer()
    consumer.ensure_group(group)
    event = chat_event()
    stream.publish(event)
    _deliver_times(consumer, group, 4)  # the survivor's claim is the fifth delivery: one more try is allowed
    time.sleep(0.02)  # deliberate: past the survivor's 0.01 s claim time
    backend = MemoryBackend()
    drainer_for(backend, consumer="survivor", claim_seconds=0.01).run(until_idle=True)
    assert [p["runId"] for p in backend.sent] == [run_id(event)]
    assert stream.dead_letters() == []
    assert stream.pending(group) == 0


def test_a_consumer_restarted_on_its_own_overdelivered_entries_dead_letters_them(stream, settings, tmp_path):
    group = "llm-proxy-dispatchers-file"
    settings.DISPATCH_MAX_DELIVERIES = 2
    settings.REDIS_CONSUMER_NAME = "restarting"
    consumer = get_consumer()
    consumer.ensure_group(group)
    stream.publish(chat_event(), chat_event())
    consumer.read(group, "restarting", 10, None)  # delivered once, then the process died
    consumer.read(group, "restarting", 10, None, pending=True)  # restarted, died again
    drainer = build_drainer("file", cli=True, endpoint=str(tmp_path / "never-written.jsonl"))
    drainer.run(until_idle=True)  # the third delivery is over the limit
    assert [d["reason"] for d in stream.dead_letters()] == [
        "delivered 3 times without an ack (DISPATCH_MAX_DELIVERIES=2)"
    ] * 2
    assert stream.pending(group) == 0
    assert not (tmp_path / "never-written.jsonl").exists()


# --- refused requests, Lunary's own transient failures, bounded dead letters ---------------------------


def refused_event(**overrides):
    headers = {"Content-Type": ["application/json"], "X-Proxy-Refused": ["unauthorized"]}
    return chat_event(status=401, request_body=None, response_body=None, response_headers=headers, **overrides)


def test_events_of_refused_requests_are_acknowledged_without_reaching_lunary_or_helicone(
    stream, fake_lunary, fake_helicone
):
    lunary = build_drainer("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    helicone = build_drainer("helicone", endpoint=f"{fake_helicone.url}/oai/v1/log", api_key=HELICONE_KEY)
    lunary.options.batch_wait = 0.0
    refused, served = refused_event(), chat_event()
    stream.publish(refused, served)
    lunary.run(until_idle=True)
    helicone.run(until_idle=True)
    assert list(fake_lunary.runs) == [run_id(served)]
    assert list(fake_helicone.by_request_id()) == [run_id(served)]
    assert (lunary.skipped, lunary.delivered, helicone.skipped, helicone.delivered) == (1, 1, 1, 1)
    assert stream.pending("llm-proxy-dispatchers-lunary") == stream.pending("llm-proxy-dispatchers-helicone") == 0
    assert stream.dead_letters() == []


def test_the_file_service_keeps_events_of_refused_requests(stream, tmp_path):
    path = tmp_path / "refused.jsonl"
    refused = refused_event()
    stream.publish(refused)
    build_drainer("file", cli=True, endpoint=str(path)).run(until_idle=True)
    [line] = [json.loads(line) for line in path.read_text().splitlines()]
    assert line["runId"] == run_id(refused) and line["metadata"]["status"] == 401


def test_a_lunary_per_event_transient_failure_is_retried_until_the_run_is_stored(stream, fake_lunary):
    drainer = build_drainer("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    drainer.options.batch_wait = 0.0
    fake_lunary.fail_events_next(4)  # the run's `start` and `end` fail in two 200 answers
    event = chat_event()
    stream.publish(event)
    drainer.run(until_idle=True)
    assert fake_lunary.runs[run_id(event)]["status"] == "success"
    assert len(fake_lunary.requests) == 3
    assert stream.dead_letters() == []
    assert stream.pending("llm-proxy-dispatchers-lunary") == 0


def test_a_lunary_per_event_failure_that_persists_is_dead_lettered_after_the_retries(stream, fake_lunary):
    drainer = build_drainer("lunary", endpoint=f"{fake_lunary.url}/v1/runs/ingest", api_key=LUNARY_KEY)
    drainer.options.batch_wait = 0.0
    fake_lunary.fail_events_next(8)
    stream.publish(chat_event())
    drainer.run(until_idle=True)
    [dead] = stream.dead_letters()
    assert dead["reason"].startswith("gave up after 4 attempts") and TRANSIENT_EVENT_ERROR in dead["reason"]
    assert len(fake_lunary.requests) == 4


def test_the_dead_letter_stream_is_trimmed_to_about_its_max_len(stream, settings):
    settings.REDIS_DEAD_LETTER_MAX_LEN = 20
    node = int(stream.redis.config_get("stream-node-max-entries")["stream-node-max-entries"])
    backend = MemoryBackend()
    backend.raise_on(lambda payload: True, ValueError("rejects everything"))
    stream.publish(*[chat_event() for _ in range(300)])
    drainer_for(backend, batch_size=1).run(until_idle=True)
    assert stream.pending("llm-proxy-dispatchers-memory") == 0
    # MAXLEN ~ trims whole nodes of the radix tree: at most one node's worth above the bound.
    assert 20 <= stream.redis.xlen(f"{stream.key}:dead-letter") <= 20 + node


def test_a_dead_letter_max_len_of_zero_keeps_every_dead_letter(stream, settings):
    settings.REDIS_DEAD_LETTER_MAX_LEN = 0
    DeadLetters().add("memory", [(f"{i + 1}-0", "{}", "rejected") for i in range(250)])
    assert stream.redis.xlen(f"{stream.key}:dead-letter") == 250


def test_a_living_consumer_keeps_the_entries_it_is_still_sending(stream):
    slow = MemoryBackend()
    deliver = slow.send

    def send_slowly(payloads):
        time.sleep(1.5)  # five times the claim time: an outage's timeouts and backoff
        deliver(payloads)

    slow.send = send_slowly
    stream.publish(*[chat_event() for _ in range(3)])
    sending = drainer_for(slow, consumer="slow", claim_seconds=0.3)
    sender = threading.Thread(target=sending.run, kwargs={"until_idle": True})
    sender.start()
    wait_until(lambda: stream.pending("llm-proxy-dispatchers-memory") >= 3, message="the slow sender to read all 3")
    rival_backend = MemoryBackend()
    rival = drainer_for(rival_backend, consumer="rival", claim_seconds=0.3)
    while sender.is_alive():
        rival.last_claim = 0
        rival.run(until_idle=True)
    assert rival_backend.sent == []  # nothing claimed from a consumer that is alive
    assert len(slow.sent) == 3
    assert stream.pending("llm-proxy-dispatchers-memory") == 0
