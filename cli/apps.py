from django.apps import AppConfig


class CliConfig(AppConfig):
    """The operator's command-line tools: `manage.py benchmark` (a load generator) and `manage.py chat`."""

    name = "cli"
    default_auto_field = "django.db.models.BigAutoField"
