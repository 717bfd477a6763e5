"""Re-measure the hostile-input reproductions of docs/security.md. Prints figures; not a test.

    .venv/bin/python scripts/measure_hostile.py [--server daphne|uvicorn] [--chunked-mb 300]

Starts the proxy as `make run` does (SQLite, in-memory bus, FILE_EVENT_LOG) in a throw-away folder, then:
1. four POSTs without a token of a ~58 KB gzip body holding ~60 MB of JSON (`Content-Encoding: gzip`);
2. the same four POSTs with a valid token (the body is kept in the event, the worst case for the event log);
3. one chunked POST of --chunked-mb MB without a token to /v1/chat/completions, /manage/projects and /admin/.
After each step it prints the server's resident memory growth (VmRSS) and the event log's growth.
Daphne reads a whole request before the application runs, so step 3 is only bounded under uvicorn or
behind the nginx front of docker/docker-compose.yml (docs/deployment.md).
"""

import argparse
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MB = 1024 * 1024


def gzip_bomb() -> bytes:
    """~60 MB of JSON that gzip packs into ~58 KB."""
    filler = b'{"role":"user","content":"' + b"a" * (60 * MB) + b'"}'
    return gzip.compress(b'{"model":"gpt-4o-mini","messages":[' + filler + b"]}", compresslevel=9)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(server: str, folder: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATA_DIR": str(folder),
        "DJANGO_DEBUG": "true",
        "LLM_PROXY_EVENT_BUS": "in-memory",
        "FILE_EVENT_LOG": str(folder / "events.jsonl"),
        "MANAGEMENT_TOKEN": "measure-hostile-management-token-0123456789",
        "LOG_LEVEL": "error",
    }
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    app = "llmproxy.asgi:application"
    if server == "uvicorn":
        command = [PYTHON, "-m", "uvicorn", app, "--port", str(port), "--no-access-log", "--log-level", "error"]
    else:
        command = [str(ROOT / ".venv" / "bin" / "daphne"), "-p", str(port), app]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    sys.exit("the server did not start")


def make_token(folder: Path) -> str:
    env = {**os.environ, "DATA_DIR": str(folder)}
    created = subprocess.run(
        [PYTHON, "manage.py", "project_create", "--name", "hostile", "--api-key", "sk-upstream-hostile-0123456789"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    project_id = next(word for word in created.split() if len(word) == 36 and word.count("-") == 4)
    token = subprocess.run(
        [PYTHON, "manage.py", "token_generate", "--project-id", project_id, "--duration", "60"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(word for word in token.split() if word.startswith("sk-"))


def chunked(total: int):
    block = b"x" * (256 * 1024)
    for _ in range(total // len(block)):
        yield block


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def settled_size(log: Path, process: subprocess.Popen, peak: list[float]) -> int:
    """The event log's size once its writer thread has been idle for five seconds (at most 60 s)."""
    size, quiet_since, deadline = log_size(log), time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 5.0 and time.monotonic() < deadline:
        time.sleep(0.1)
        peak[0] = max(peak[0], rss_mb(process.pid))
        if log_size(log) != size:
            size, quiet_since = log_size(log), time.monotonic()
    return size


def step(name: str, process: subprocess.Popen, log: Path, send) -> None:
    rss, size = rss_mb(process.pid), log_size(log)
    peak = [rss]
    outcome = send()
    grown = settled_size(log, process, peak) - size
    print(
        f"{name}: {outcome}; RSS {rss:.0f} MB before, {peak[0]:.0f} MB at most after, "
        f"{rss_mb(process.pid):.0f} MB at the end; event log +{grown / 1024:.1f} KB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--chunked-mb", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="measure-hostile-"))
    port = free_port()
    process = start(args.server, folder, port)
    base, log, bomb = f"http://127.0.0.1:{port}", folder / "events.jsonl", gzip_bomb()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    print(f"server {args.server}, gzip body {len(bomb) / 1024:.0f} KB")
    try:

        def four(token: str = ""):
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            return [
                httpx.post(f"{base}/v1/chat/completions", content=bomb, headers={**headers, **auth}).status_code
                for _ in range(4)
            ]

        step("4 gzip POSTs, no token", process, log, four)
        token = make_token(folder)
        step("4 gzip POSTs, valid token", process, log, lambda: four(token))
        for path in ("/v1/chat/completions", "/manage/projects", "/admin/login/"):

            def big(path=path):
                try:
                    return httpx.post(base + path, content=chunked(args.chunked_mb * MB), timeout=120).status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__

            step(f"{args.chunked_mb} MB chunked POST to {path}", process, log, big)
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
