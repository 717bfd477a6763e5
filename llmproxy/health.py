"""/health, /ready and /live (reference §1 #18)."""

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def health(request):
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return JsonResponse({"status": "ok", "version": settings.VERSION, "timestamp": now})


def live(request):
    return HttpResponse("alive", content_type="text/plain; charset=utf-8")


def ready(request):
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
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
