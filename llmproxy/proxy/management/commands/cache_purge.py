"""manage.py cache_purge --method GET --url /v1/models [--prefix HEX] [--remote]: `manage cache purge`."""

import json
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import AuditContext
from llmproxy.proxy.cache_purge import PurgeError, cache_purge


class Command(BaseCommand):
    help = (
        "Purge cached proxy responses in every project: one request's entry (--method, --url) or every key "
        "starting with --prefix. Acts on the configured Redis cache directly, or with --remote through "
        "POST /manage/cache/purge of a running server (needed for the in-memory cache)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--method", required=True, help="HTTP method of the cached request (required, as in the reference)"
        )
        parser.add_argument("--url", required=True, help="URL or path of the cached request, e.g. /v1/models")
        parser.add_argument(
            "--prefix", default="", help="delete every key starting with this (hex, from X-PROXY-CACHE-KEY)"
        )
        parser.add_argument("--remote", action="store_true", help="call the management API instead of the backend")
        parser.add_argument(
            "--api-base-url", "--manage-api-base-url", dest="api_base_url", default="",
            help="management API base URL for --remote (default: MANAGEMENT_API_BASE_URL)",
        )  # fmt: skip
        parser.add_argument("--management-token", default="", help="for --remote (default: MANAGEMENT_TOKEN)")
        parser.add_argument("--json", action="store_true", help="print the JSON result")

    def handle(self, *args: str, **options: Any) -> None:
        remote = options["remote"] or bool(options["api_base_url"])
        result = self._remote(options) if remote else self._direct(options)
        if options["json"]:
            self.stdout.write(json.dumps(result))
        elif isinstance(result["deleted"], bool):
            self.stdout.write("Purged the entry." if result["deleted"] else "No cached entry for that request.")
        else:
            self.stdout.write(f"Purged {result['deleted']} entr{'y' if result['deleted'] == 1 else 'ies'}.")

    def _direct(self, options: dict[str, Any]) -> dict[str, object]:
        if settings.HTTP_CACHE_ENABLED and settings.HTTP_CACHE_BACKEND in ("in-memory", "memory"):
            raise CommandError(
                "HTTP_CACHE_BACKEND=in-memory: the cache lives inside each web process, not here. "
                "Purge it through the running server with --remote (MANAGEMENT_API_BASE_URL, MANAGEMENT_TOKEN)."
            )
        try:
            return cache_purge(
                method=options["method"], url=options["url"], prefix=options["prefix"], ctx=AuditContext(actor="cli")
            )
        except PurgeError as exc:
            raise CommandError(exc.message) from None

    def _remote(self, options: dict[str, Any]) -> dict[str, object]:
        base = (options["api_base_url"] or settings.MANAGEMENT_API_BASE_URL).rstrip("/")
        token = options["management_token"] or settings.MANAGEMENT_TOKEN
        if not token:
            raise CommandError("--remote needs the management token: set MANAGEMENT_TOKEN or pass --management-token.")
        body = {"method": options["method"], "url": options["url"]}
        if options["prefix"]:
            body["prefix"] = options["prefix"]
        try:
            response = httpx.post(
                base + "/manage/cache/purge", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach the management API at {base}: {exc}") from None
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200:
            raise CommandError(f"{base} answered {response.status_code}: {data.get('error') or response.text.strip()}")
        return data
