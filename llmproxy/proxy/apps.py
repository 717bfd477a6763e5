from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "llmproxy.proxy"
    label = "proxy"
    verbose_name = "Proxy"

    def ready(self) -> None:
        # Background work of a web process (llmproxy.lifecycle); shutdown hooks run in reverse order,
        # so the database connection of the shared sync thread is closed last.
        from llmproxy import lifecycle

        from . import invalidation, upstream, usage

        lifecycle.on_shutdown(aclose_database)
        usage.register()
        invalidation.register()
        upstream.register()


async def aclose_database() -> None:
    """Close the connection of asgiref's shared thread, where /v1's database work runs."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()
