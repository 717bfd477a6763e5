"""Real server processes: graceful shutdown under plain Daphne, and revocation across two web processes."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.conftest import MANAGEMENT_TOKEN, write_provider_config
from tests.support.fake_upstream import sse_chunks
from tests.support.waiting import wait_until, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = str(Path(sys.executable).with_name("daphne"))
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}


def shared_database_url(tmp_path) -> str:
    """A database the server processes share with this test: the PostgreSQL test database itself, or a
    file copy of SQLite's in-memory test database (taken now, so create the rows first)."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
        return f"postgres://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    path = tmp_path / "shared.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(path)])
    return f"sqlite:///{path}"


def request_count(database_url: str, token_id) -> int:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return db.execute("SELECT request_count FROM tokens WHERE id = ?", [token_id.hex]).fetchone()[0]
    from tokens.models import Token

    return Token.objects.get(id=token_id).request_count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(tmp_path, database_url: str, upstream_url: str, **env) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "providers.yaml"
    write_provider_config(config, upstream_url)
    port = free_port()
    environment = {
        **os.environ,
        "MANAGEMENT_TOKEN": MANAGEMENT_TOKEN,
        "DATABASE_URL": database_url,
        "API_CONFIG_PATH": str(config),
        "LLM_PROXY_EVENT_BUS": "in-memory",
        "DATA_DIR": str(tmp_path),
        "AUDIT_LOG_FILE": str(tmp_path / "audit.log"),
        "FILE_EVENT_LOG": "",
        **env,
    }
    process = subprocess.Popen(
        [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "llmproxy.asgi:application"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, process)
    return process, url


@pytest.fixture
def servers():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stderr.close()


def test_daphne_finishes_in_flight_streams_and_flushes_counters_on_sigterm(
    transactional_db, tmp_path, fake_upstream, token_pair, servers
):
    database_url = shared_database_url(tmp_path)
    process, url = start_daphne(tmp_path, database_url, fake_upstream.url, USAGE_STATS_FLUSH_INTERVAL="60s")
    servers.append(process)
    events = sse_chunks(("one", "two", "three", "four"))
    fake_upstream.sse("/v1/chat/completions", events, delays=[0, 0.5, 0.5, 0.5, 0.5, 0])
    first_chunk, received, failure = threading.Event(), [], []

    def stream() -> None:
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=CHAT, timeout=30,
                              headers={"Authorization": f"Bearer {token_pair[1]}"}) as response:  # fmt: skip
                for chunk in response.iter_raw():
                    received.append(chunk)
                    first_chunk.set()
        except Exception as exc:  # reported by the assertions below
            failure.append(exc)
            first_chunk.set()

    client = threading.Thread(target=stream)
    client.start()
    assert first_chunk.wait(15)
    process.send_signal(signal.SIGTERM)

    def refuses_new_connections() -> bool:
        try:
            httpx.get(url + "/live", timeout=2)
        except httpx.ConnectError:
            return True
        return False

    wait_until(refuses_new_connections, timeout=5, message="daphne to refuse new connections after SIGTERM")
    assert client.is_alive()  # no new work is accepted while draining: the stream is still in flight
    client.join(30)
    assert failure == []
    assert b"".join(received) == "".join(events).encode()
    assert process.wait(30) == 0
    assert request_count(database_url, token_pair[0].id) == 1  # flushed by the shutdown hooks


def test_revocation_reaches_another_web_process_within_a_second(
    transactional_db, tmp_path, fake_upstream, token_pair, own_redis, servers
):
    database_url = shared_database_url(tmp_path)
    redis_addr = own_redis.url.removeprefix("redis://").removesuffix("/0")
    env = {"HTTP_CACHE_BACKEND": "redis", "HTTP_CACHE_ENABLED": "false", "REDIS_ADDR": redis_addr}
    (a, url_a), (b, url_b) = (start_daphne(tmp_path, database_url, fake_upstream.url, **env) for _ in range(2))
    servers.extend([a, b])
    auth = {"Authorization": f"Bearer {token_pair[1]}"}
    for url in (url_a, url_b):  # both processes now hold the token in their caches
        assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    wait_until(  # both processes' invalidation listeners subscribed (the channel name is the proxy's own)
        lambda: dict(own_redis.client().pubsub_numsub("llm-proxy:invalidate")).get("llm-proxy:invalidate") == 2,
        timeout=10,
        message="both web processes to subscribe to the invalidation channel",
    )

    revoked = httpx.delete(
        f"{url_a}/manage/tokens/{token_pair[0].id}", headers={"Authorization": f"Bearer {MANAGEMENT_TOKEN}"}
    )
    assert revoked.status_code in (200, 204), revoked.text
    wait_until(
        lambda: httpx.get(url_b + "/v1/models", headers=auth).status_code != 200,
        timeout=1.0,
        interval=0.02,
        message="process B to refuse the revoked token",
    )
    assert httpx.get(url_a + "/v1/models", headers=auth).status_code == 401


def revoke_through(url: str, token_id) -> float:
    """Revoke the token through this process's /manage; returns when the revocation was committed."""
    revoked = httpx.delete(f"{url}/manage/tokens/{token_id}", headers={"Authorization": f"Bearer {MANAGEMENT_TOKEN}"})
    assert revoked.status_code in (200, 204), revoked.text
    return time.monotonic()


def seconds_until_refused(url: str, auth: dict, since: float) -> float:
    wait_until(
        lambda: httpx.get(url + "/v1/models", headers=auth).status_code == 401,
        timeout=3,
        interval=0.02,
        message="the other process to refuse the revoked token",
    )
    return time.monotonic() - since


def test_revocation_reaches_another_web_process_within_a_second_without_redis(
    transactional_db, tmp_path, fake_upstream, token_pair, servers
):
    database_url = shared_database_url(tmp_path)  # one PostgreSQL database, or one SQLite file
    (a, url_a), (b, url_b) = (start_daphne(tmp_path, database_url, fake_upstream.url) for _ in range(2))
    servers.extend([a, b])
    auth = {"Authorization": f"Bearer {token_pair[1]}"}
    for url in (url_a, url_b):  # both processes now hold the token in their caches
        assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    time.sleep(1.2)  # past the one second that entries are trusted before the first generation read
    assert httpx.get(url_b + "/v1/models", headers=auth).status_code == 200

    assert seconds_until_refused(url_b, auth, revoke_through(url_a, token_pair[0].id)) < 1.0


def test_revocation_reaches_another_web_process_within_a_second_when_the_message_is_lost(
    transactional_db, tmp_path, fake_upstream, token_pair, own_redis, servers
):
    database_url = shared_database_url(tmp_path)
    redis_addr = own_redis.url.removeprefix("redis://").removesuffix("/0")
    env = {"HTTP_CACHE_BACKEND": "redis", "HTTP_CACHE_ENABLED": "false", "REDIS_ADDR": redis_addr}
    (a, url_a), (b, url_b) = (start_daphne(tmp_path, database_url, fake_upstream.url, **env) for _ in range(2))
    servers.extend([a, b])
    auth = {"Authorization": f"Bearer {token_pair[1]}"}
    for url in (url_a, url_b):
        assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    # PUBLISH is refused from now on: the revocation's message is lost, the generation's INCR still works
    own_redis.client().execute_command("ACL", "SETUSER", "default", "-publish")

    assert seconds_until_refused(url_b, auth, revoke_through(url_a, token_pair[0].id)) < 1.0
