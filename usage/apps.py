from django.apps import AppConfig


class UsageConfig(AppConfig):
    """Usage analytics: hourly rollups per project and token, kept by the `usage` dispatch service
    (`dispatch/backends/usage.py`), and the admin's usage dashboard that reads them."""

    name = "usage"
    verbose_name = "Usage analytics"
    default_auto_field = "django.db.models.BigAutoField"
