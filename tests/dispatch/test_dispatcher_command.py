import os
import signal
import time

import pytest
from django.core.management import CommandError, call_command

from dispatch.transform import run_id
from tests.dispatch.factories import chat_event
from tests.dispatch.processes import dispatcher, wait_until
from tests.support.fake_services import LUNARY_KEY


def test_a_missing_api_key_stops_start_up_naming_the_flag(stream, settings):
    settings.LUNARY_API_KEY = settings.LLM_PROXY_API_KEY = ""
    with pytest.raises(CommandError, match="--api-key"):
        call_command("dispatcher", "--service", "lunary")


def test_a_missing_file_path_stops_start_up_naming_the_flag(stream, settings):
    settings.DISPATCHER_ENDPOINT = ""
    with pytest.raises(CommandError, match="--endpoint"):
        call_command("dispatcher", "--service", "file")


def test_with_the_in_memory_bus_only_the_file_service_can_run(settings):
    settings.LLM_PROXY_EVENT_BUS = "in-memory"
    with pytest.raises(CommandError, match="in-memory.*just the file service, in-process"):
        call_command("dispatcher", "--service", "helicone", "--api-key", "k")


def test_a_detached_dispatcher_sends_the_batch_it_is_gathering_on_sigterm(stream, fake_lunary, tmp_path):
    launcher = dispatcher(
        stream.key,
        "--service",
        "lunary",
        "--endpoint",
        f"{fake_lunary.url}/v1/runs/ingest",
        "--api-key",
        LUNARY_KEY,
        "--batch-size",
        "100",
        "--detach",
        DISPATCHER_FLUSH_INTERVAL="60s",
        DATA_DIR=str(tmp_path),
    )
    assert launcher.wait() == 0, launcher.output
    pid = int(launcher.output.split("pid ")[1].split(",")[0])
    log = tmp_path / "dispatcher-lunary.log"

    def details(what: str):
        return lambda: f"{what}; log:\n{log.read_text() if log.exists() else '(none)'}"

    try:
        wait_until(
            lambda: "delivering to lunary" in log.read_text(), message=details("the detached dispatcher to start")
        )
        events = [chat_event() for _ in range(5)]
        stream.publish(*events)
        wait_until(lambda: stream.pending("llm-proxy-dispatchers-lunary") == 5, message=details("5 events read"))
        assert fake_lunary.requests == [], log.read_text()  # still waiting for a full batch
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: _gone(pid), message=details("the dispatcher to stop"))
    assert {run_id(e) for e in events} <= set(fake_lunary.runs), log.read_text()
    assert stream.pending("llm-proxy-dispatchers-lunary") == 0
    assert "stopped; 5 events delivered" in log.read_text(), log.read_text()
    assert LUNARY_KEY not in launcher.output + log.read_text()


def test_events_held_by_a_killed_dispatcher_are_claimed_by_another_and_none_is_lost(stream, fake_lunary):
    common = ("--service", "lunary", "--endpoint", f"{fake_lunary.url}/v1/runs/ingest", "--api-key", LUNARY_KEY)
    first = dispatcher(stream.key, *common, DISPATCHER_FLUSH_INTERVAL="60s")
    second = None
    try:
        first.wait_for("dispatcher: delivering to lunary")
        events = [chat_event() for _ in range(20)]
        stream.publish(*events)
        wait_until(lambda: stream.pending("llm-proxy-dispatchers-lunary") == 20, message="20 events in flight")
        first.signal(signal.SIGKILL)
        first.wait()
        second = dispatcher(stream.key, *common, REDIS_STREAM_CLAIM_TIME="500ms", DISPATCHER_FLUSH_INTERVAL="100ms")
        wait_until(lambda: {run_id(e) for e in events} <= set(fake_lunary.runs), message="all runs at Lunary")
        wait_until(lambda: stream.pending("llm-proxy-dispatchers-lunary") == 0, message="all acknowledged")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert "claimed 20 entries" in second.output
    assert fake_lunary.violations == []
    assert stream.dead_letters() == []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"


CLAIM_SECONDS = 2.0


def _holders(stream, group: str) -> dict[str, int]:
    """Consumers with entries read but not acknowledged, and how many each holds."""
    return {c["name"]: c["pending"] for c in stream.redis.xpending(stream.key, group)["consumers"]}


def test_events_held_by_a_killed_dispatcher_reach_lunary_through_a_survivor_within_claim_time_plus_5s(
    stream, fake_lunary
):
    group = "llm-proxy-dispatchers-lunary"
    common = ("--service", "lunary", "--endpoint", f"{fake_lunary.url}/v1/runs/ingest", "--api-key", LUNARY_KEY)
    timing = {"REDIS_STREAM_CLAIM_TIME": f"{CLAIM_SECONDS}s", "DISPATCHER_FLUSH_INTERVAL": "100ms"}
    workers = {name: dispatcher(stream.key, *common, REDIS_CONSUMER_NAME=name, **timing) for name in ("a", "b")}
    try:
        for worker in workers.values():
            worker.wait_for("dispatcher: delivering to lunary")
        fake_lunary.hang_next(1)  # whoever sends first stalls, holding what it read
        events = [chat_event() for _ in range(10)]
        stream.publish(*events)
        wait_until(
            lambda: (
                fake_lunary.requests  # the stalled request has arrived
                and len(_holders(stream, group)) == 1
                and len(fake_lunary.runs) + sum(_holders(stream, group).values()) == len(events)
            ),
            message=lambda: f"one stalled holder: {_holders(stream, group)}, {len(fake_lunary.runs)} runs",
        )
        [(stalled, held)] = _holders(stream, group).items()
        workers[stalled].signal(signal.SIGKILL)
        killed_at = time.monotonic()
        workers[stalled].wait()
        wait_until(lambda: {run_id(e) for e in events} <= set(fake_lunary.runs), message="all runs at Lunary")
        recovered_in = time.monotonic() - killed_at
        wait_until(lambda: stream.pending(group) == 0, message="all acknowledged")
    finally:
        for worker in workers.values():
            worker.stop()
    survivor = workers["b" if stalled == "a" else "a"]
    assert f"claimed {held} entries" in survivor.output
    assert recovered_in <= CLAIM_SECONDS + 5, f"the survivor delivered after {recovered_in:.1f}s"
    assert stream.dead_letters() == []
