"""docker/entrypoint.sh, run outside Docker: it waits for the database, migrates once, then execs its command."""

import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKER, ENTRYPOINT, container_env, free_port, pg_tables, run_entrypoint
from tests.support.waiting import wait_until

PRINT_PID = ["python", "-c", "import os; print('exec pid', os.getpid())"]
APP_TABLES = {"projects", "tokens", "audit_events", "usage_rollups", "django_migrations"}


def test_the_entrypoint_migrates_then_execs_the_command_in_its_own_process(tmp_path, container_db):
    db_env, tables = container_db
    proc = subprocess.Popen(
        [str(ENTRYPOINT), *PRINT_PID],
        env=container_env(tmp_path, **db_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert f"exec pid {proc.pid}" in out  # exec: the command replaced the shell, so it gets the signals
    assert APP_TABLES <= tables()
    assert "is answering" in err


def test_migrate_on_start_false_leaves_migrations_to_the_migrate_service(tmp_path, container_db):
    db_env, tables = container_db
    result = run_entrypoint(PRINT_PID, container_env(tmp_path, MIGRATE_ON_START="false", **db_env))
    assert result.returncode == 0, result.stderr
    assert "MIGRATE_ON_START=false" in result.stderr and "exec pid" in result.stdout
    assert "django_migrations" not in tables()


def test_replicas_starting_together_migrate_one_after_another(tmp_path, container_db):
    """The compose file's `migrate` service and a replica with MIGRATE_ON_START=true start at once on an empty
    database: without the lock (PostgreSQL advisory lock, SQLite file lock) the two `migrate` runs collide."""
    db_env, tables = container_db
    env = container_env(tmp_path, **db_env)
    procs = [
        subprocess.Popen([str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in (["migrate"], PRINT_PID)
    ]
    results = [(*proc.communicate(timeout=120), proc.returncode) for proc in procs]
    for _out, err, code in results:
        assert code == 0, err
    assert "exec pid" in results[1][0]
    assert APP_TABLES <= tables()


def test_the_entrypoint_gives_up_when_the_database_never_answers(tmp_path):
    env = container_env(
        tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nothing", DB_WAIT_TIMEOUT="1s"
    )
    result = run_entrypoint(PRINT_PID, env)
    assert result.returncode == 1
    assert "did not answer within DB_WAIT_TIMEOUT=1s" in result.stderr
    assert "exec pid" not in result.stdout


class DelayedForwarder:
    """A TCP port that drops connections until `delay` seconds have passed and at least one was dropped, then
    forwards to PostgreSQL: a database that is still booting."""

    def __init__(self, port: int, delay: float) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.ready_at = time.monotonic() + delay
        self.dropped = 0

    def start(self) -> "DelayedForwarder":
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.ready_at or not self.dropped:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", 5432))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()  # both pumps close both ends: the second close is a no-op

    def stop(self) -> None:
        self.listener.close()


def test_the_entrypoint_waits_for_a_database_that_comes_up_later(tmp_path, pg_database):
    port = free_port()
    forwarder = DelayedForwarder(port, delay=1.0).start()
    try:
        url = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
        started = time.monotonic()
        result = run_entrypoint(PRINT_PID, container_env(tmp_path, DATABASE_URL=url, DB_WAIT_TIMEOUT="30s"))
    finally:
        forwarder.stop()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.0 and forwarder.dropped >= 1
    assert "waiting for database" in result.stderr and "exec pid" in result.stdout
    assert APP_TABLES <= pg_tables(pg_database)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> int:
    def status() -> int:
        if proc.poll() is not None:
            pytest.fail(f"the web process exited with {proc.returncode}: {proc.stderr.read()}")
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status

    return wait_until(status, timeout=timeout, interval=0.2, ignoring=(OSError,), message=f"{url} to answer")


def child_commands(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-ww", "--ppid", str(pid), "-o", "args="], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_web_serves_with_web_concurrency_daphne_processes_and_stops_on_sigterm(tmp_path, container_db):
    port = free_port()
    # Migrations are covered above (/ready needs only a database that answers); a short drain bounds the stop.
    env = container_env(
        tmp_path,
        WEB_CONCURRENCY="2",
        LISTEN_ADDR=f"127.0.0.1:{port}",
        MIGRATE_ON_START="false",
        SHUTDOWN_TIMEOUT="2s",
        **container_db[0],
    )
    proc = subprocess.Popen(
        [str(ENTRYPOINT), "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/ready", proc) == 200
        daphnes = [cmd for cmd in child_commands(proc.pid) if "daphne" in cmd]
        assert len(daphnes) == 2 and all("--fd" in cmd and "llmproxy.asgi:application" in cmd for cmd in daphnes)
        health = subprocess.run(
            ["python", str(DOCKER / "healthcheck.py")], env=env, capture_output=True, text=True, timeout=10
        )
        assert health.returncode == 0, health.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert child_commands(proc.pid) == []


def test_the_healthcheck_fails_when_nothing_answers(tmp_path):
    env = container_env(tmp_path, LISTEN_ADDR=f"0.0.0.0:{free_port()}")
    result = subprocess.run(["python", str(DOCKER / "healthcheck.py")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "not ready" in result.stderr


def test_web_server_uvicorn_serves_with_uvicorn_workers_and_stops_on_sigterm(tmp_path, container_db):
    port = free_port()
    env = container_env(
        tmp_path,
        WEB_SERVER="uvicorn",
        WEB_CONCURRENCY="1",
        LISTEN_ADDR=f"127.0.0.1:{port}",
        MIGRATE_ON_START="false",
        SHUTDOWN_TIMEOUT="2s",
        **container_db[0],
    )
    proc = subprocess.Popen(
        [str(ENTRYPOINT), "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/ready", proc) == 200
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert any(b"uvicorn" in part for part in cmdline)  # exec'd: the container's PID 1 is uvicorn itself
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so it ends "killed by SIGTERM".
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
