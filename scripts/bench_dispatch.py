#!/usr/bin/env python
"""Dispatch benchmark: how fast the `file` service drains the event stream, and event-to-file latency under Celery.

    .venv/bin/python scripts/bench_dispatch.py drain --events 20000
    .venv/bin/python scripts/bench_dispatch.py celery --rate 200 --seconds 20

`drain` fills a fresh stream with N events (half non-streamed, half streamed chat completions, as the
proxy records them) and times one in-process drainer writing them to a JSONL file, from its first read
to its last delivery.
`celery` starts `celery -A llmproxy worker -B` (DISPATCH_SERVICES=file), publishes events at a fixed
rate, and measures, per event, the time from XADD to its line appearing in the file.
Uses the local Redis (REDIS_ADDR); every run uses its own stream key and removes it afterwards.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RUN = uuid.uuid4().hex[:8]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")
os.environ["LLM_PROXY_EVENT_BUS"] = "redis-streams"
os.environ["REDIS_STREAM_KEY"] = f"bench-dispatch-{RUN}"
os.environ.setdefault("LOG_LEVEL", "warn")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from dispatch.runner import build_drainer  # noqa: E402
from instrumentation.events import Event  # noqa: E402

CHAT_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words."}]}
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there, how are you?"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21},
}


def sse_body(words: int = 20) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini"}
    lines = [
        {**base, "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]}
        for i in range(words)
    ]
    lines.append({**base, "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": words}})
    return ("".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n").encode()


def make_event(index: int) -> Event:
    stream = index % 2 == 1
    return Event(
        request_id=f"bench-{RUN}-{index}",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ns=850_000_000,
        response_headers={"Content-Type": ["text/event-stream" if stream else "application/json"]},
        response_body=sse_body() if stream else json.dumps(ANSWER).encode(),
        request_body=json.dumps({**CHAT_REQUEST, "stream": stream}).encode(),
    )


def fill(client: redis.Redis, key: str, count: int) -> float:
    started = time.perf_counter()
    data = [make_event(i).to_json() for i in range(count)]
    for offset in range(0, count, 500):
        pipe = client.pipeline(transaction=False)
        for item in data[offset : offset + 500]:
            pipe.xadd(key, {"data": item})
        pipe.execute()
    return time.perf_counter() - started


def drain_all(drainer, expected: int) -> int:
    """The drain loop of `Drainer.run`, timed up to the last delivery.

    `run(until_idle=True)` only ends after one empty read has waited the drainer's block time (1 s):
    that wait is not part of the throughput.
    """
    handled = 0
    while handled < expected:
        count = drainer.step()
        if count == 0:
            break  # nothing came within the block time: the stream is empty (or events were lost)
        handled += count
    return handled


def bench_drain(args) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = settings.REDIS_STREAM_KEY
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        try:
            filled = fill(client, key, args.events)
            drainer = build_drainer("file", cli=True, endpoint=str(path), batch_size=args.batch_size)
            started, cpu_started = time.perf_counter(), time.process_time()
            handled = drain_all(drainer, args.events)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            lines = sum(1 for _ in path.open())
        finally:
            client.delete(key, f"{key}:dead-letter")
    print(f"filled {args.events} events in {filled:.2f}s")
    print(
        f"drained {handled} events ({lines} lines) in {elapsed:.2f}s with batch size {args.batch_size}: "
        f"{handled / elapsed:,.0f} events/s ({handled / cpu:,.0f} per CPU-second of the dispatcher)"
    )


def bench_celery(args) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key, queue = settings.REDIS_STREAM_KEY, f"bench-dispatch-queue-{RUN}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        env = {
            **os.environ,
            "DISPATCH_SERVICES": "file",
            "DISPATCH_FILE_PATH": str(path),
            "TEST_CELERY_QUEUE": queue,
            "DISPATCH_INTERVAL": args.interval,
        }
        args_ = ["-A", "tests.dispatch.celery_app", "worker", "-B", "-Q", queue, "--without-mingle", "--without-gossip"]
        args_ += ["--concurrency", str(args.concurrency), "-s", str(Path(tmp) / "beat"), "--loglevel", "WARNING"]
        log_path = Path(tmp) / "worker.log"
        with log_path.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", *args_], cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            # Measure from the moment the worker delivers: one probe event must reach the file first.
            client.xadd(key, {"data": make_event(-2).to_json()})
            if not watch_file(path, 1, timeout=args.startup_timeout):
                sys.exit("the worker did not deliver the probe event; output:\n" + log_path.read_text()[-3000:])
            arrived: dict[str, float] = {}
            total = int(args.rate * args.seconds) + 1
            watcher = threading.Thread(target=watch_file, args=(path, total, args.seconds + 30, arrived))
            watcher.start()
            sent = publish_at_rate(client, key, args.rate, args.seconds)
            watcher.join()
        finally:
            worker.terminate()
            worker.wait(30)
            client.delete(key, f"{key}:dead-letter", queue, f"_kombu.binding.{queue}")
        if not arrived:
            sys.exit("no event reached the file; worker output:\n" + log_path.read_text()[-3000:])
    report_latency(sent, arrived, args)


def publish_at_rate(client: redis.Redis, key: str, rate: int, seconds: float) -> dict[str, float]:
    sent, total = {}, int(rate * seconds)
    started = time.perf_counter()
    for index in range(total):
        due = started + index / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        event = make_event(index)
        client.xadd(key, {"data": event.to_json()})
        sent[event.request_id] = time.time()
    return sent


def watch_file(path: Path, expected: int, timeout: float, arrived: dict | None = None) -> dict[str, float]:
    """Arrival time of every line, by request id, polling the file every 5 ms."""
    arrived = {} if arrived is None else arrived
    deadline, offset, partial = time.monotonic() + timeout, 0, b""
    while len(arrived) < expected and time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            now = time.time()
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                arrived[json.loads(line)["metadata"]["request_id"]] = now
        time.sleep(0.005)
    return arrived


def report_latency(sent: dict[str, float], arrived: dict[str, float], args) -> None:
    latencies = sorted(arrived[rid] - sent[rid] for rid in sent if rid in arrived)
    missing = len(sent) - len(latencies)
    p = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"celery worker -B (concurrency {args.concurrency}, DISPATCH_INTERVAL={args.interval}): "
        f"{len(sent)} events at {args.rate}/s for {args.seconds}s"
    )
    print(
        f"event-to-file latency: p50 {p[49] * 1000:.0f} ms, p95 {p[94] * 1000:.0f} ms, p99 {p[98] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; missing {missing}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    drain = modes.add_parser("drain", help="file service throughput in one process")
    drain.add_argument("--events", type=int, default=20000)
    drain.add_argument("--batch-size", type=int, default=100)
    celery = modes.add_parser("celery", help="event-to-file latency under a Celery worker with beat")
    celery.add_argument("--rate", type=int, default=200, help="events per second")
    celery.add_argument("--seconds", type=float, default=20)
    celery.add_argument("--interval", default="1s", help="DISPATCH_INTERVAL")
    celery.add_argument("--concurrency", type=int, default=1)
    celery.add_argument("--startup-timeout", type=float, default=60, help="seconds for the worker to start")
    args = parser.parse_args()
    bench_drain(args) if args.mode == "drain" else bench_celery(args)


if __name__ == "__main__":
    main()
