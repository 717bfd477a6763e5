import sys
import uuid

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from dispatch.runner import run_cycle
from dispatch.schedule import beat_schedule, check_services
from dispatch.streams import ServiceLock
from dispatch.transform import run_id
from tests.dispatch.conftest import REDIS_URL
from tests.dispatch.factories import chat_event
from tests.dispatch.processes import Process, subprocess_env, wait_until


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

    usage_maintenance()  # no rollups, no tokens: nothing to do, and nothing fails


def test_a_worker_for_a_service_without_its_key_does_not_start(settings):
    settings.DISPATCH_SERVICES = ["helicone"]
    settings.HELICONE_API_KEY = settings.LLM_PROXY_API_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="HELICONE_API_KEY"):
        check_services()


def test_a_cycle_is_skipped_while_another_worker_drains_the_service(stream, settings, tmp_path):
    settings.DISPATCH_FILE_PATH = str(tmp_path / "locked.jsonl")
    stream.publish(chat_event(), chat_event())
    other_worker = ServiceLock("file", ttl=30)
    assert other_worker.acquire()
    assert run_cycle("file", seconds=1) == 0
    other_worker.release()
    assert run_cycle("file", seconds=1) == 2
    assert len((tmp_path / "locked.jsonl").read_text().splitlines()) == 2


def test_a_celery_worker_with_beat_writes_the_events_to_the_file(stream, tmp_path):
    path = tmp_path / "celery-events.jsonl"
    queue = f"test-dispatch-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        stream.key,
        DISPATCH_SERVICES="file",
        DISPATCH_FILE_PATH=str(path),
        DISPATCH_INTERVAL="200ms",
        CELERY_BROKER_URL=REDIS_URL,
        TEST_CELERY_QUEUE=queue,
    )
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.dispatch.celery_app",
        "worker",
        "-B",
        "-Q",
        queue,
        "--concurrency",
        "1",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "-s",
        str(tmp_path / "beat-schedule"),
        "--loglevel",
        "INFO",
    ]
    worker = Process(args, env)
    try:
        events = [chat_event() for _ in range(30)]
        stream.publish(*events[:10])
        wait_until(lambda: path.exists() and len(path.read_text().splitlines()) == 10, 60, "the first events")
        stream.publish(*events[10:])
        wait_until(lambda: len(path.read_text().splitlines()) == 30, 20, "the rest")
    finally:
        worker.stop()
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(queue, f"_kombu.binding.{queue}")
    assert [line.split('"runId":"')[1][:36] for line in path.read_text().splitlines()] == [run_id(e) for e in events]
    assert stream.pending("llm-proxy-dispatchers-file") == 0
