from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "llmproxy.proxy"
    label = "proxy"
    verbose_name = "Proxy"

    def ready(self) -> None:
        # The one place the proxy's per-process state is made (runtime.py lists its parts and their order);
        # the ASGI application starts it on the serving loop and stops it at shutdown.
        from . import state
        from .runtime import ProxyRuntime

        state.install(ProxyRuntime())
