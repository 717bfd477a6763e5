"""`manage.py chat`: the reference's `openai chat` REPL, driven through stdin."""

import asyncio
import io
import os
import subprocess
import sys
import threading

import pytest
from aiohttp import web
from django.conf import settings
from django.core.management import CommandError, call_command

from tests.support.fake_upstream import sse_chunks
from tests.support.waiting import wait_until

TOKEN = "sk-chat-secret-token-0123456789"


class Session:
    """`manage.py chat` in its own process, with its stdin and stdout as pipes."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PROXY_URL", "PROXY_TOKEN", "MODEL", "USE_STREAMING")}
        env["PYTHONPATH"] = str(settings.BASE_DIR)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "chat", *args],
            cwd=settings.BASE_DIR, env=env, text=True, bufsize=0,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.output = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.process.stdout.read(1):
            self.output += chunk

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        def appeared() -> bool:
            if text not in self.output and self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"{text!r} never appeared in:\n{self.output}\n{self.process.stderr.read()}")
            return text in self.output

        wait_until(appeared, timeout=timeout, message=lambda: f"{text!r} to appear in:\n{self.output}")

    def close(self) -> int:
        self.process.stdin.close()
        code = self.process.wait(15)
        self._reader.join(5)
        if not self._reader.is_alive():  # never close a pipe under the thread reading it
            self.process.stdout.close()
        self.process.stderr.close()
        return code


@pytest.fixture
def chat(monkeypatch):
    def run(*args: str, lines: str) -> str:
        """The command in this process with `lines` as its standard input; returns what it printed."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
        out = io.StringIO()
        call_command("chat", *args, stdout=out)
        return out.getvalue()

    return run


def test_tokens_are_printed_as_they_arrive(fake_upstream):
    gate = threading.Event()
    events = sse_chunks(("Hel", "lo", " there", ", friend"))

    async def stream(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events[:2]:
            await response.write(event.encode())
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 30)  # the rest only when the test says
        for event in events[2:]:
            await response.write(event.encode())
        return response

    fake_upstream.route("POST", "/v1/chat/completions", stream)
    session = Session("--proxy", fake_upstream.url, "--token", TOKEN)
    try:
        session.wait_for("Type 'exit' or 'quit' to end the session")
        session.send("Say hello")
        session.wait_for("Hello")  # printed while the upstream is still holding back the rest
        assert " there" not in session.output
        gate.set()
        session.wait_for("Hello there, friend\n")
        session.send("exit")
        session.wait_for("Ending chat session")
    finally:
        gate.set()
        assert session.close() == 0
    assert "Starting chat session with gpt-4.1-mini" in session.output
    assert "Streaming mode enabled" in session.output
    (request,) = fake_upstream.requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.json()["stream"] is True and request.json()["model"] == "gpt-4.1-mini"
    assert TOKEN not in session.output


def test_the_conversation_history_is_kept_and_end_of_input_ends_the_session(fake_upstream, chat):
    printed = chat(
        "--proxy", fake_upstream.url, "--token", TOKEN, "--model", "gpt-4o-mini", "--system", "Be brief.",
        "--temperature", "0.2", "--max-tokens", "50",
        lines="First question\n\nSecond question\n",
    )  # fmt: skip
    assert printed.count("Hello from upstream") == 2
    assert printed.rstrip().endswith("Ending chat session")
    first, second = (request.json() for request in fake_upstream.requests)
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question"},
    ]
    assert second["messages"][1:] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "Hello from upstream"},
        {"role": "user", "content": "Second question"},
    ]
    assert (second["model"], second["temperature"], second["max_tokens"]) == ("gpt-4o-mini", 0.2, 50)


def test_no_stream_prints_the_whole_answer_and_verbose_adds_usage(fake_upstream, chat):
    printed = chat("--proxy", fake_upstream.url, "--token", TOKEN, "--no-stream", "--verbose", lines="Hi\nquit\n")
    assert "Hello from upstream\n" in printed
    assert "[Tokens: 9 prompt, 3 completion, 12 total]" in printed
    assert "stream" not in fake_upstream.requests[0].json()
    assert "max_tokens" not in fake_upstream.requests[0].json()  # 0 means no limit: not sent


def test_an_error_is_shown_and_the_failed_message_is_not_resent(fake_upstream, chat):
    fake_upstream.reply("/v1/chat/completions", status=401, json_body={"error": "Invalid token"})
    printed = chat("--proxy", fake_upstream.url, "--token", TOKEN, "--no-stream", lines="One\nTwo\n")
    assert "Error: API error 401" in printed
    assert [m["content"] for m in fake_upstream.requests[1].json()["messages"]] == [
        "You are a helpful assistant.",
        "Two",
    ]


def test_settings_come_from_the_reference_environment_variables(fake_upstream, chat, monkeypatch):
    monkeypatch.setenv("PROXY_URL", fake_upstream.url)
    monkeypatch.setenv("PROXY_TOKEN", TOKEN)
    monkeypatch.setenv("MODEL", "gpt-4o")
    monkeypatch.setenv("USE_STREAMING", "false")
    monkeypatch.setenv("SYSTEM_PROMPT", "You are terse.")
    printed = chat(lines="Hi\n")
    assert "Starting chat session with gpt-4o" in printed and "Streaming mode enabled" not in printed
    body = fake_upstream.requests[0].json()
    assert body["model"] == "gpt-4o" and body["messages"][0]["content"] == "You are terse."


def test_a_token_is_required(chat, monkeypatch):
    monkeypatch.delenv("PROXY_TOKEN", raising=False)
    with pytest.raises(CommandError, match="PROXY_TOKEN"):
        chat(lines="")


def test_chat_through_the_proxy(proxy_server, token_pair, chat):
    printed = chat("--proxy", proxy_server.url, "--token", token_pair[1], lines="Hello proxy\nexit\n")
    assert "Hello from upstream" in printed
    (request,) = proxy_server.upstream.requests
    assert request.headers["Authorization"] == "Bearer sk-upstream-acme-key-1234567890"
    assert request.json()["messages"][-1] == {"role": "user", "content": "Hello proxy"}
