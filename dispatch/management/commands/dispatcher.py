"""`manage.py dispatcher`: the reference's standalone dispatcher CLI, on the same drain loop as the Celery tasks."""

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch.backends import KEY_SETTINGS, BackendConfigError, create_backend, services_for_cli
from dispatch.drain import Drainer, DrainOptions
from dispatch.runner import build_drainer

logger = logging.getLogger("dispatch")


class Command(BaseCommand):
    help = "Deliver instrumentation events from the event stream to a JSONL file, Lunary or Helicone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--service",
            choices=services_for_cli(),
            default=settings.DISPATCHER_SERVICE,
            help="Backend service (DISPATCHER_SERVICE, default file).",
        )
        parser.add_argument(
            "--endpoint",
            default=None,
            help="File path (file) or the full URL POSTed to (DISPATCHER_ENDPOINT, "
            "LUNARY_ENDPOINT, HELICONE_ENDPOINT).",
        )
        parser.add_argument(
            "--api-key", default=None, help="API key (LUNARY_API_KEY / HELICONE_API_KEY, or LLM_PROXY_API_KEY)."
        )
        parser.add_argument(
            "--buffer",
            type=int,
            default=settings.DISPATCHER_BUFFER,
            help="Events held in memory at most (DISPATCHER_BUFFER, default 1000).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.DISPATCHER_BATCH_SIZE,
            help="Events per delivery (DISPATCHER_BATCH_SIZE, default 100).",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            default=settings.DISPATCHER_DETACH,
            help="Run in the background and print its process id (DISPATCHER_DETACH).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1 or options["buffer"] < 1:
            raise CommandError("--batch-size and --buffer must be at least 1.")
        if options["detach"]:
            return self._detach(options)
        stop = threading.Event()
        if settings.LLM_PROXY_EVENT_BUS != "redis-streams":
            return self._serve_in_process(options, stop)
        drainer = self._drainer(options, stop)
        self._on_signals(stop)
        o = drainer.options
        self._say(
            f"dispatcher: delivering to {o.service} ({drainer.backend.describe()}); stream "
            f"{settings.REDIS_STREAM_KEY}, group {o.group}, consumer {o.consumer}"
        )
        try:
            self._run(drainer, stop)
        finally:
            drainer.backend.close()
        self._say(
            f"dispatcher: stopped; {drainer.delivered} events delivered, {drainer.dead} dead-lettered, "
            f"{drainer.skipped} skipped"
        )

    def _drainer(self, options: dict[str, Any], stop: threading.Event) -> Drainer:
        try:
            return build_drainer(
                options["service"],
                cli=True,
                endpoint=options["endpoint"],
                api_key=options["api_key"],
                batch_size=min(options["batch_size"], options["buffer"]),
                stop=stop,
            )
        except BackendConfigError as exc:
            raise CommandError(str(exc)) from None
        except redis.RedisError as exc:
            raise CommandError(f"Cannot use the event stream on Redis ({settings.REDIS_ADDR}): {exc}") from None

    def _run(self, drainer: Drainer, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                drainer.run()
            except redis.RedisError as exc:
                # As the reference: keep going when Redis comes back; nothing was acknowledged meanwhile.
                logger.warning("dispatcher: Redis error, retrying in 1s: %s", exc)
                stop.wait(1.0)

    def _on_signals(self, stop: threading.Event) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: leave now, unacknowledged events stay pending
            self._say(f"dispatcher: {signal.Signals(signum).name} received, stopping after the current batch")
            stop.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def _serve_in_process(self, options: dict[str, Any], stop: threading.Event) -> None:
        from dispatch.inprocess import InProcessConsumer, LoggedDeadLetters
        from instrumentation.bus import get_bus

        if options["service"] != "file":
            raise CommandError(
                f"LLM_PROXY_EVENT_BUS={settings.LLM_PROXY_EVENT_BUS} works inside one process only, so this command "
                f"can serve just the file service, in-process. To run the {options['service']} dispatcher, set "
                "LLM_PROXY_EVENT_BUS=redis-streams (with Redis) here and in the web process."
            )
        try:
            backend = create_backend("file", cli=True, endpoint=options["endpoint"])
        except BackendConfigError as exc:
            raise CommandError(str(exc)) from None
        self._on_signals(stop)
        consumer = InProcessConsumer(options["buffer"])
        get_bus().subscribe(consumer.offer)
        self._say(
            "dispatcher: the in-memory event bus serves only the file service, in-process: it receives "
            "events published by this process alone (use redis-streams, or FILE_EVENT_LOG in the web process)"
        )
        drain_options = DrainOptions(
            service="file",
            group="in-process",
            consumer="in-process",
            batch_size=min(options["batch_size"], options["buffer"]),
            retry_base=settings.DISPATCHER_RETRY_BASE,
        )
        Drainer(backend, consumer, LoggedDeadLetters(), drain_options, stop=stop).run()
        self._say("dispatcher: stopped")

    def _detach(self, options: dict[str, Any]) -> None:
        """Start the same command in its own session, output to a log file, and return (what --detach promises)."""
        args = [
            sys.executable,
            "-m",
            "django",
            "dispatcher",
            "--service",
            options["service"],
            "--buffer",
            str(options["buffer"]),
            "--batch-size",
            str(options["batch_size"]),
        ]
        if options["endpoint"]:
            args += ["--endpoint", options["endpoint"]]
        env = {**os.environ, "DISPATCHER_DETACH": "false", "DJANGO_SETTINGS_MODULE": "llmproxy.settings"}
        if options["api_key"]:
            # Handed over in the environment, not on the command line where `ps` would show it.
            env[KEY_SETTINGS.get(options["service"], "LLM_PROXY_API_KEY")] = options["api_key"]
        log_path = Path(settings.LOG_FILE or Path(settings.DATA_DIR) / f"dispatcher-{options['service']}.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                args,
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._say(f"dispatcher: running in the background, pid {process.pid}, log {log_path}")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
