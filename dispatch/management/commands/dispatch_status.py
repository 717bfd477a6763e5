"""`manage.py dispatch_status`: per service, how far its dispatchers are behind and what failed."""

import json
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch.status import dispatch_status
from instrumentation.bus.groups import dead_letter_key


class Command(BaseCommand):
    help = "Show each dispatch service's consumer-group lag, pending entries, consumers and dead letters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = dispatch_status()
        except redis.RedisError as exc:
            raise CommandError(f"Cannot read the event stream on Redis ({settings.REDIS_ADDR}): {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps({"stream": settings.REDIS_STREAM_KEY, "services": rows}, indent=2))
            return
        self.stdout.write(f"stream {settings.REDIS_STREAM_KEY}, dead letters in {dead_letter_key()}")
        if not rows:
            self.stdout.write("no dispatch services yet (no consumer group on the stream, DISPATCH_SERVICES empty)")
            return
        self.stdout.write(f"{'SERVICE':<12} {'GROUP':<36} {'LAG':>8} {'PENDING':>8} {'CONSUMERS':>10} {'DEAD':>6}")
        for row in rows:
            self.stdout.write(
                f"{row['service']:<12} {row['group']:<36} {row['lag']:>8} {row['pending']:>8} "
                f"{len(row['consumers']):>10} {row['dead_letter']:>6}"
            )
            for c in row["consumers"]:
                self.stdout.write(f"  consumer {c['name']}: {c['pending']} pending, idle {c['idle_ms'] / 1000:.1f}s")
