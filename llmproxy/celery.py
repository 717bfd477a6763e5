"""The Celery application: dispatch workers drain the event stream (see dispatch/tasks.py)."""

import os
import sys
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")

app = Celery("llmproxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _add_dispatch_schedule(sender: Celery, **_kwargs: Any) -> None:
    """Beat runs one drain cycle per service in DISPATCH_SERVICES every DISPATCH_INTERVAL."""
    from dispatch.schedule import beat_schedule

    sender.conf.beat_schedule = {**(sender.conf.beat_schedule or {}), **beat_schedule()}


@worker_init.connect
def _check_dispatch_services(**_kwargs: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from dispatch.schedule import check_services

    try:
        check_services()
    except ImproperlyConfigured as exc:
        # Signal handlers' exceptions are only logged by Celery; a misconfigured worker must not start.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
