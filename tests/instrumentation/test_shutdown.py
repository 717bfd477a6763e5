"""SIGTERM flushes the publish buffer: a real Daphne process, its Redis coming back just before the signal."""

import json
import os
import signal
import subprocess
import sys

import httpx

from tests.conftest import MANAGEMENT_TOKEN
from tests.support.redis_server import OwnRedis, free_port
from tests.support.waiting import wait_until_serving


def test_sigterm_writes_what_waits_in_the_buffer_before_the_process_exits(tmp_path):
    redis = OwnRedis()  # not started yet: events wait in the buffer, the publisher retrying
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "llmproxy.settings",
        "MANAGEMENT_TOKEN": MANAGEMENT_TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LLM_PROXY_EVENT_BUS": "redis-streams",
        "REDIS_URL": redis.url,
        "REDIS_STREAM_KEY": "events",
        "FILE_EVENT_LOG": "",
        "SHUTDOWN_TIMEOUT": "10s",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "llmproxy.asgi:application"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            wait_until_serving(f"http://127.0.0.1:{port}")
            # Preflights need neither a token nor the database, and each one is an event.
            headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
            ids = [http.options("/v1/chat/completions", headers=headers).headers["X-Request-ID"] for _ in range(5)]

        redis.start()
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0, server.stderr.read().decode()[-2000:]

        entries = redis.client().xrange("events")
        assert sorted(json.loads(fields["data"])["RequestID"] for _, fields in entries) == sorted(ids)
    finally:
        if server.poll() is None:
            server.kill()
        redis.stop()
