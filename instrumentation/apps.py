from django.apps import AppConfig


class InstrumentationConfig(AppConfig):
    name = "instrumentation"
    default_auto_field = "django.db.models.BigAutoField"
