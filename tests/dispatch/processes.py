"""Dispatchers and Celery workers as real subprocesses, with their output collected for assertions."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings

from tests.support import waiting

BASE_DIR = Path(settings.BASE_DIR)


def subprocess_env(stream_key: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DISPATCH", "CELERY_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="llmproxy.settings",
        LLM_PROXY_EVENT_BUS="redis-streams",
        REDIS_ADDR="127.0.0.1:6379",
        REDIS_STREAM_KEY=stream_key,
        DISPATCHER_RETRY_BASE="50ms",
        LOG_FORMAT="console",
        LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Process:
    def __init__(self, args: list[str], env: dict) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 40.0) -> None:
        def appeared() -> bool:
            if text not in self.output and self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"the process exited before {text!r} appeared; output:\n{self.output}")
            return text in self.output

        wait_until(appeared, timeout, lambda: f"{text!r} to appear; output:\n{self.output}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 40.0) -> int:
        code = self.proc.wait(timeout)
        self._release()
        return code

    def _release(self) -> None:
        """Close the output pipe once the reader has read it to the end (never under a reading thread)."""
        self._reader.join(5)
        if not self._reader.is_alive():
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._release()


def dispatcher(stream_key: str, *args: str, **env: str) -> Process:
    return Process([sys.executable, "manage.py", "dispatcher", *args], subprocess_env(stream_key, **env))


def wait_until(condition, timeout: float = 40.0, message="condition") -> None:
    """The shared `wait_until` with a longer default: these tests wait on whole processes starting up."""
    waiting.wait_until(condition, timeout=timeout, interval=0.05, message=message)
