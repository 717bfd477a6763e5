"""`manage.py chat`: the reference's `openai chat` REPL, through the official openai client.

    manage.py chat --proxy http://localhost:8080 --token "$PROXY_TOKEN" [--model gpt-4.1-mini] [--no-stream]

Defaults come from PROXY_URL, PROXY_TOKEN, MODEL, TEMPERATURE, MAX_TOKENS, SYSTEM_PROMPT, VERBOSE and
USE_STREAMING, as in the reference. The conversation history is kept for the session; `exit`, `quit`
or end of input (Ctrl-D) ends it.
"""

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import openai
from django.core.management.base import BaseCommand, CommandError, CommandParser

TIMING_HEADERS = ("X-Proxy-Received-At", "X-Proxy-First-Response-At", "X-Proxy-Final-Response-At")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in {"1", "true", "yes", "on"}


class Command(BaseCommand):
    help = "Chat with a model through the proxy (streaming tokens as they arrive)."

    def add_arguments(self, parser: CommandParser) -> None:
        env = os.environ.get
        parser.add_argument("--proxy", default=env("PROXY_URL", "http://localhost:8080"), help="Proxy base URL")
        parser.add_argument("--token", default=env("PROXY_TOKEN", ""), help="Proxy token (or PROXY_TOKEN)")
        parser.add_argument("--model", default=env("MODEL", "gpt-4.1-mini"))
        parser.add_argument("--system", default=env("SYSTEM_PROMPT", "You are a helpful assistant."))
        parser.add_argument("--temperature", type=float, default=float(env("TEMPERATURE", "0.7")))
        parser.add_argument(
            "--max-tokens", type=int, default=int(env("MAX_TOKENS", "0")), help="0 = no limit (not sent)"
        )
        parser.add_argument(
            "--stream", action="store_true", default=_env_bool("USE_STREAMING", True), help="Stream (default)"
        )
        parser.add_argument("--no-stream", dest="stream", action="store_false", help="Wait for the whole answer")
        parser.add_argument(
            "--verbose", action="store_true", default=_env_bool("VERBOSE", False), help="Show timing and usage"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["token"]:
            raise CommandError("No token: pass --token or set PROXY_TOKEN.")
        self.opts = opts
        for name in ("openai", "httpx", "httpx2"):  # their per-request INFO lines would interleave with the reply
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = openai.OpenAI(base_url=opts["proxy"].rstrip("/") + "/v1", api_key=opts["token"], max_retries=0)
        self._banner()
        _enable_line_editing()
        messages = [{"role": "system", "content": opts["system"]}]
        while (text := self._read()) is not None:
            if not text:
                continue
            messages.append({"role": "user", "content": text})
            reply = self._answer(messages)
            if reply is None:
                messages.pop()  # not answered: do not send it again as history
            else:
                messages.append({"role": "assistant", "content": reply})
        self._say("Ending chat session")

    def _banner(self) -> None:
        self._say(f"Starting chat session with {self.opts['model']}")
        if self.opts["stream"]:
            self._say("Streaming mode enabled")
        if self.opts["verbose"]:
            self._say("Verbose mode enabled")
        self._say("Type 'exit' or 'quit' to end the session")
        self._say(f"System prompt: {self.opts['system']}\n")

    def _read(self) -> str | None:
        try:
            text = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            self._say("")
            return None
        return None if text in ("exit", "quit") else text

    def _answer(self, messages: list[dict[str, Any]]) -> str | None:
        request = {"model": self.opts["model"], "messages": messages, "temperature": self.opts["temperature"]}
        if self.opts["max_tokens"] > 0:
            request["max_tokens"] = self.opts["max_tokens"]
        started = time.monotonic()
        try:
            reply = self._stream(request) if self.opts["stream"] else self._complete(request)
        except openai.APIError as exc:
            self._say(f"\nError: {_describe(exc)}")
            return None
        if self.opts["verbose"]:
            self._grey(f"[Verbose] Total request duration: {time.monotonic() - started:.3f}s")
        return reply

    def _stream(self, request: dict[str, Any]) -> str:
        parts = []
        with self.client.chat.completions.with_streaming_response.create(**request, stream=True) as response:
            self._timing(response.headers)
            for chunk in response.parse():
                content = chunk.choices[0].delta.content if chunk.choices else None
                if content:
                    parts.append(content)
                    self.stdout.write(content, ending="")
                    self.stdout.flush()  # each token as it arrives, also when stdout is a pipe
        self._say("")
        return "".join(parts)

    def _complete(self, request: dict[str, Any]) -> str:
        raw = self.client.chat.completions.with_raw_response.create(**request)
        self._timing(raw.headers)
        completion = raw.parse()
        content = (completion.choices[0].message.content or "") if completion.choices else ""
        self._say(content or "No response from model")
        if self.opts["verbose"] and completion.usage:
            usage = completion.usage
            self._grey(
                f"[Tokens: {usage.prompt_tokens} prompt, {usage.completion_tokens} completion, "
                f"{usage.total_tokens} total]"
            )
        return content

    def _timing(self, headers: Mapping[str, str]) -> None:
        if self.opts["verbose"]:
            for name in TIMING_HEADERS:
                if headers.get(name):
                    self._grey(f"[Verbose] {name}: {headers[name]}")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _grey(self, text: str) -> None:
        self._say(f"\033[90m{text}\033[0m" if sys.stdout.isatty() else text)


def _enable_line_editing() -> None:
    """Arrow keys and history at a terminal, like the reference's readline prompt."""
    if sys.stdin.isatty():
        try:
            import readline  # noqa: F401  (importing it is what enables it for input())
        except ImportError:
            pass


def _describe(exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    return f"API error {status}: {exc.message}" if status else exc.message
