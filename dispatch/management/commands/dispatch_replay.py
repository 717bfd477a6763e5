"""`manage.py dispatch_replay --service S`: put a service's dead-lettered events back on the event stream."""

from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch.streams import DeadLetters


class Command(BaseCommand):
    help = "Re-queue the dead-lettered events of one service; only that service delivers them again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--service", required=True, help="The service whose dead letters to re-queue.")
        parser.add_argument("--limit", type=int, default=None, help="Re-queue at most this many (oldest first).")
        parser.add_argument("--dry-run", action="store_true", help="Only show what would be re-queued.")

    def handle(self, *args: Any, **options: Any) -> None:
        service = options["service"]
        try:
            dead_letters = DeadLetters()
            if options["dry_run"]:
                for entry_id, fields in dead_letters.entries(service):
                    self.stdout.write(f"{entry_id} {fields.get('stream_id', '')}: {fields.get('reason', '')}")
                return
            moved = dead_letters.replay(service, limit=options["limit"])
        except redis.RedisError as exc:
            raise CommandError(f"Cannot reach Redis ({settings.REDIS_ADDR}): {exc}") from None
        self.stdout.write(f"re-queued {moved} dead-lettered events for {service} on {settings.REDIS_STREAM_KEY}")
