"""MAX_REQUEST_SIZE is enforced while the body arrives, on every path, under uvicorn (a real server process).

A chunked body announces no length, so nothing can be refused up front: the application counts what it
receives, answers 413 once the count passes the limit and stops reading. The server's peak RSS shows that
no more than the limit (plus a chunk) was ever held.
"""

import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import MANAGEMENT_TOKEN, write_provider_config
from tests.proxy.test_processes import free_port, shared_database_url
from tests.support.waiting import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
UVICORN = str(Path(sys.executable).with_name("uvicorn"))
BODY_BYTES = 300 * 1024 * 1024
CHUNK = b"x" * 65536
MB = 1024 * 1024


@pytest.fixture
def uvicorn_server(tmp_path, transactional_db):
    config = tmp_path / "providers.yaml"
    write_provider_config(config, "http://127.0.0.1:9")  # never reached: every request here is refused first
    port = free_port()
    environment = {
        **os.environ,
        "MANAGEMENT_TOKEN": MANAGEMENT_TOKEN,
        "DATABASE_URL": shared_database_url(tmp_path),
        "API_CONFIG_PATH": str(config),
        "LLM_PROXY_EVENT_BUS": "in-memory",
        "DATA_DIR": str(tmp_path),
        "AUDIT_LOG_FILE": str(tmp_path / "audit.log"),
        "FILE_EVENT_LOG": "",
        "MAX_REQUEST_SIZE": str(10 * MB),
    }
    # The flags docker/launch.py gives uvicorn in production.
    argv = [UVICORN, "llmproxy.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "on", "--no-access-log"]
    process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        yield process, port
    finally:
        process.terminate()  # a graceful stop closes its database connections before the test database goes
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def send_chunked(port: int, path: str, total: int) -> tuple[bytes, int]:
    """POST up to `total` bytes in chunked encoding, no token, reading the answer as soon as one comes.

    Returns what the server answered (b"" when it reset the connection before answering anything) and how
    many body bytes were sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
    frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
    answer, sent = b"", 0
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            if writable:
                sock.sendall(frame)
                sent += len(CHUNK)
        else:
            sock.sendall(b"0\r\n\r\n")
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"request_too_large" in answer:
                break
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server may close the connection once it answered (or even while we still send)
    finally:
        sock.close()
    return answer, sent


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/manage/projects", "/admin/login/"])
def test_a_300_mb_chunked_body_is_refused_with_413_in_bounded_memory(uvicorn_server, path):
    process, port = uvicorn_server
    httpx.post(f"http://127.0.0.1:{port}{path}", content=b"{}")  # warm the path up before measuring
    before = memory_kb(process.pid, "VmRSS")
    answer, sent = send_chunked(port, path, BODY_BYTES)
    peak = memory_kb(process.pid, "VmHWM")
    if answer:  # a reset with nothing read is tolerated; an answer must be the 413
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"content-type: application/json" in answer.lower() and b'"code":"request_too_large"' in answer
    assert (peak - before) * 1024 < 150 * MB, f"RSS grew by {(peak - before) // 1024} MB"
    assert sent < BODY_BYTES / 2  # the server stopped reading long before the end (it did not spool it to disk)
    assert httpx.get(f"http://127.0.0.1:{port}/live").status_code == 200  # and it keeps serving
