"""The Celery beat schedule and the worker start-up check for DISPATCH_SERVICES."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def beat_schedule() -> dict[str, Any]:
    interval = settings.DISPATCH_INTERVAL
    schedule = {
        f"dispatch-{service}": {
            "task": "dispatch.tasks.drain_service",
            "schedule": interval,
            "args": (service,),
            # A busy worker would otherwise build a backlog of cycles that find nothing left to do.
            "options": {"expires": max(interval * 5, 5.0)},
        }
        for service in settings.DISPATCH_SERVICES
    }
    if "usage" in settings.DISPATCH_SERVICES:
        # Cache hits publish no event and retention must apply in quiet hours too.
        schedule["usage-maintenance"] = {"task": "dispatch.tasks.usage_maintenance", "schedule": 300.0}
    return schedule


def check_services() -> None:
    """Fail worker start-up with a clear message when a service in DISPATCH_SERVICES cannot run."""
    from dispatch.backends import BackendConfigError, create_backend

    for service in settings.DISPATCH_SERVICES:
        try:
            create_backend(service).close()
        except BackendConfigError as exc:
            raise ImproperlyConfigured(f"DISPATCH_SERVICES lists {service!r}: {exc}") from None
