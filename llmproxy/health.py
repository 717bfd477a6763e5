"""/health, /ready and /live: the reference's health endpoints, with the same bodies and statuses."""

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from llmproxy import redis as redis_clients

logger = logging.getLogger(__name__)


def health(request: HttpRequest) -> JsonResponse:
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return JsonResponse({"status": "ok", "version": settings.VERSION, "timestamp": now})


def live(request: HttpRequest) -> HttpResponse:
    return HttpResponse("alive", content_type="text/plain; charset=utf-8")


def ready(request: HttpRequest) -> HttpResponse:
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.warning("readiness: database is not answering", exc_info=True)
        problems.append("database unavailable")
    if settings.REDIS_CONFIGURED and not _redis_answers():
        problems.append("redis unavailable")
    if problems:
        return JsonResponse({"status": "not ready", "reasons": problems}, status=503)
    return HttpResponse("ready", content_type="text/plain; charset=utf-8")


def _redis_answers() -> bool:
    return redis_clients.ping(timeout=1.0)
