from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "llmproxy.proxy"
    label = "proxy"
    verbose_name = "Proxy"

    def ready(self) -> None:
        # The one place the proxy's per-process state is made (runtime.py lists its parts and their order);
        # the ASGI application starts it on the serving loop and stops it at shutdown.
        from instrumentation import metrics_runtime
        from instrumentation.bus import holder as event_bus

        from . import state
        from .runtime import ProxyRuntime

        # The other apps' parts of a web process, in their start-up order (shutdown runs in reverse): the
        # event bus's publisher, then the runtime metrics. The runtime starts them after its own parts.
        event_bus.register()
        metrics_runtime.register()
        state.install(ProxyRuntime())
