import os
import signal
import sys
import time
import uuid

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from dispatch.runner import cycle_lock, run_cycle
from dispatch.schedule import beat_schedule, check_services
from dispatch.transform import run_id
from instrumentation.bus import get_consumer
from tests.dispatch.conftest import REDIS_URL
from tests.dispatch.factories import chat_event
from tests.dispatch.processes import Process, subprocess_env, wait_until
from tests.support.fake_services import LUNARY_KEY


def test_beat_runs_one_drain_per_service_every_interval(settings):
    settings.DISPATCH_SERVICES = ["file", "lunary"]
    settings.DISPATCH_INTERVAL = 0.5
    schedule = beat_schedule()
    assert {name: (e["task"], e["args"], e["schedule"]) for name, e in schedule.items()} == {
        "dispatch-file": ("dispatch.tasks.drain_service", ("file",), 0.5),
        "dispatch-lunary": ("dispatch.tasks.drain_service", ("lunary",), 0.5),
    }


def test_beat_also_runs_usage_maintenance_when_the_usage_service_is_on(settings):
    settings.DISPATCH_SERVICES = ["usage"]
    schedule = beat_schedule()
    assert schedule["usage-maintenance"]["task"] == "dispatch.tasks.usage_maintenance"
    assert schedule["dispatch-usage"]["args"] == ("usage",)


@pytest.mark.django_db
def test_usage_maintenance_task_runs_without_events():
    from dispatch.tasks import usage_maintenance

    result = usage_maintenance.apply()  # no rollups, no tokens: nothing to do, and nothing fails
    assert result.successful(), result.traceback


def test_a_worker_for_a_service_without_its_key_does_not_start(settings):
    settings.DISPATCH_SERVICES = ["helicone"]
    settings.HELICONE_API_KEY = settings.LLM_PROXY_API_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="HELICONE_API_KEY"):
        check_services()


def test_a_cycle_is_skipped_while_another_cycle_of_the_service_runs_in_the_same_process(stream, settings, tmp_path):
    settings.DISPATCH_FILE_PATH = str(tmp_path / "locked.jsonl")
    stream.publish(chat_event(), chat_event())
    with cycle_lock("file"):  # a cycle on another thread of this worker, under the same consumer name
        assert run_cycle("file", seconds=1) == 0
    assert run_cycle("file", seconds=1) == 2
    assert len((tmp_path / "locked.jsonl").read_text().splitlines()) == 2


def test_cycles_of_other_workers_drain_the_same_service_side_by_side(stream, settings, tmp_path):
    settings.DISPATCH_FILE_PATH = str(tmp_path / "shared.jsonl")
    settings.REDIS_STREAM_CLAIM_TIME = 60  # the other worker is alive: its entries stay its own
    stream.publish(*[chat_event() for _ in range(4)])
    other_worker = get_consumer()  # another process's cycle holds two entries it has not acknowledged yet
    other_worker.ensure_group("llm-proxy-dispatchers-file")
    assert len(other_worker.read("llm-proxy-dispatchers-file", "other-worker", 2, None)) == 2
    assert run_cycle("file", seconds=1) == 2  # nothing waits for the other worker: the group shares the stream
    assert len((tmp_path / "shared.jsonl").read_text().splitlines()) == 2


def celery(queue: str, *args: str, env: dict) -> Process:
    """`celery -A tests.dispatch.celery_app <args>` on the test's own queue."""
    common = [sys.executable, "-m", "celery", "-A", "tests.dispatch.celery_app", *args, "--loglevel", "INFO"]
    return Process(common, {**env, "TEST_CELERY_QUEUE": queue})


def worker_args(queue: str, *extra: str) -> tuple[str, ...]:
    quiet = ("--without-mingle", "--without-gossip", "--without-heartbeat")
    return ("worker", *extra, "-Q", queue, "--concurrency", "1", *quiet)


def forget_queue(queue: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(queue, f"_kombu.binding.{queue}")


def test_a_celery_worker_with_beat_writes_the_events_to_the_file(stream, tmp_path):
    path = tmp_path / "celery-events.jsonl"
    queue = f"test-dispatch-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        stream.key,
        DISPATCH_SERVICES="file",
        DISPATCH_FILE_PATH=str(path),
        DISPATCH_INTERVAL="200ms",
        CELERY_BROKER_URL=REDIS_URL,
    )
    worker = celery(queue, *worker_args(queue, "-B", "-s", str(tmp_path / "beat-schedule")), env=env)
    try:
        events = [chat_event() for _ in range(30)]
        stream.publish(*events[:10])
        wait_until(lambda: path.exists() and len(path.read_text().splitlines()) == 10, 60, "the first events")
        stream.publish(*events[10:])
        wait_until(lambda: len(path.read_text().splitlines()) == 30, 20, "the rest")
    finally:
        worker.stop()
        forget_queue(queue)
    assert [line.split('"runId":"')[1][:36] for line in path.read_text().splitlines()] == [run_id(e) for e in events]
    assert stream.pending("llm-proxy-dispatchers-file") == 0


CLAIM_SECONDS = 2.0


def test_events_held_by_a_killed_celery_worker_reach_lunary_through_a_survivor_within_claim_time_plus_5s(
    stream, fake_lunary, tmp_path
):
    group = "llm-proxy-dispatchers-lunary"
    queue = f"test-dispatch-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        stream.key,
        DISPATCH_SERVICES="lunary",
        LUNARY_ENDPOINT=f"{fake_lunary.url}/v1/runs/ingest",
        LUNARY_API_KEY=LUNARY_KEY,
        DISPATCH_INTERVAL="200ms",
        DISPATCHER_FLUSH_INTERVAL="100ms",
        REDIS_STREAM_CLAIM_TIME=f"{CLAIM_SECONDS}s",
        CELERY_BROKER_URL=REDIS_URL,
    )
    workers = [celery(queue, *worker_args(queue, "-n", f"w{i}-{queue}@%h"), env=env) for i in range(2)]
    beat = None
    try:
        for worker in workers:
            worker.wait_for("ready.", 60)
        fake_lunary.hang_next(1)  # whichever cycle sends first stalls, holding what it read
        beat = celery(queue, "beat", "-s", str(tmp_path / "beat-schedule"), env=env)
        events = [chat_event() for _ in range(10)]
        stream.publish(*events)
        wait_until(
            lambda: (
                fake_lunary.requests  # the stalled request has arrived
                and len(holders(stream, group)) == 1
                and len(fake_lunary.runs) + sum(holders(stream, group).values()) == len(events)
            ),
            60,
            lambda: f"one stalled holder: {holders(stream, group)}, {len(fake_lunary.runs)} runs",
        )
        [(consumer, held)] = holders(stream, group).items()
        child = int(consumer.rsplit("-", 1)[1])  # dispatcher-lunary-<host>-<pid of the pool process>
        stalled = next(w for w in workers if w.proc.pid == parent_of(child))
        os.kill(child, signal.SIGKILL)
        stalled.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        stalled.wait()
        wait_until(lambda: {run_id(e) for e in events} <= set(fake_lunary.runs), 30, "all runs at Lunary")
        recovered_in = time.monotonic() - killed_at
        wait_until(lambda: stream.pending(group) == 0, 30, "all acknowledged")
    finally:
        for process in [*workers, *([beat] if beat else [])]:
            process.stop()
        forget_queue(queue)
    survivor = next(w for w in workers if w is not stalled)
    assert f"claimed {held} entries" in survivor.output
    assert recovered_in <= CLAIM_SECONDS + 5, f"the survivor delivered after {recovered_in:.1f}s"
    assert stream.dead_letters() == []


def holders(stream, group: str) -> dict[str, int]:
    """Consumers with entries read but not acknowledged, and how many each holds (none before the group exists)."""
    try:
        return {c["name"]: c["pending"] for c in stream.redis.xpending(stream.key, group)["consumers"]}
    except redis.ResponseError:
        return {}


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
