"""A real web process with FILE_EVENT_LOG set, fed compressed bombs: its memory and the log stay bounded."""

from pathlib import Path

import httpx
import pytest

from tests.proxy.test_processes import shared_database_url, start_daphne
from tests.support.bombs import gzip_json_bomb
from tests.support.waiting import wait_until

MB = 1024 * 1024
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'


def memory_kb(pid: int, field: str) -> int:
    """A figure from /proc/<pid>/status: VmRSS (resident now) or VmHWM (the most it was resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    wait_until(lambda: path.exists() and path.read_bytes().count(b"\n") >= count, timeout=timeout, interval=0.05,
               message=f"{count} lines in {path}")  # fmt: skip


@pytest.fixture
def daphne_with_file_event_log(transactional_db, tmp_path, fake_upstream, token_pair):
    log = tmp_path / "events.jsonl"
    process, url = start_daphne(tmp_path, shared_database_url(tmp_path), fake_upstream.url, FILE_EVENT_LOG=str(log))
    yield process, url, log
    process.kill()
    process.wait()
    process.stderr.close()


def test_four_gzip_bombs_with_a_valid_token_grow_the_web_process_by_under_150_mb(
    daphne_with_file_event_log, fake_upstream, token_pair
):
    process, url, log = daphne_with_file_event_log
    bomb = gzip_json_bomb(60)  # ~60 KB on the wire, 60 MB of JSON once decompressed
    auth = {"Authorization": f"Bearer {token_pair[1]}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/v1/chat/completions", content=CHAT, headers=auth).status_code == 200
        wait_for_lines(log, 1)  # modules loaded and the writer thread running before the baseline
        rss_before, log_before = memory_kb(process.pid, "VmRSS"), log.stat().st_size
        # The upstream answers with the same bomb, so both bodies of each event are compressed bombs.
        fake_upstream.reply(
            "/v1/chat/completions", body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        for _ in range(4):
            headers = {**auth, "Content-Encoding": "gzip"}
            with client.stream("POST", "/v1/chat/completions", content=bomb, headers=headers) as response:
                assert response.status_code == 200
                assert b"".join(response.iter_raw()) == bomb  # relayed as the upstream encoded it
    wait_for_lines(log, 5)
    assert memory_kb(process.pid, "VmRSS") - rss_before < 150 * 1024
    assert memory_kb(process.pid, "VmHWM") - rss_before < 150 * 1024
    assert log.stat().st_size - log_before < 10 * MB
