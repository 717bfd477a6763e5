from django.apps import AppConfig


class LLMProxyConfig(AppConfig):
    """The project package itself, as an app only to register its system checks (llmproxy/checks.py)."""

    name = "llmproxy"
    label = "llmproxy"
    verbose_name = "LLM Proxy"

    def ready(self) -> None:
        from . import checks

        checks.register()
