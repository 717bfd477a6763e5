"""Dispatch backends by service name: one module each, loaded when first used."""

from django.conf import settings
from django.utils.module_loading import import_string

from dispatch.backends.base import Backend, BackendConfigError, DeliveryError

__all__ = ["BACKENDS", "Backend", "BackendConfigError", "DeliveryError", "create_backend", "services_for_cli"]

BACKENDS = {
    "file": "dispatch.backends.file.FileBackend",
    "lunary": "dispatch.backends.lunary.LunaryBackend",
    "helicone": "dispatch.backends.helicone.HeliconeBackend",
    "usage": "dispatch.backends.usage.UsageBackend",
    "memory": "dispatch.backends.memory.MemoryBackend",
}
# Per-service settings used by the Celery workers (the CLI takes --endpoint/--api-key first).
ENDPOINT_SETTINGS = {"file": "DISPATCH_FILE_PATH", "lunary": "LUNARY_ENDPOINT", "helicone": "HELICONE_ENDPOINT"}
KEY_SETTINGS = {"lunary": "LUNARY_API_KEY", "helicone": "HELICONE_API_KEY"}


def services_for_cli() -> list[str]:
    return [name for name in BACKENDS if name != "memory"]


def create_backend(
    service: str, *, endpoint: str | None = None, api_key: str | None = None, cli: bool = False
) -> Backend:
    """The backend for `service`, configured from the arguments, then settings. Raises BackendConfigError."""
    if service not in BACKENDS:
        raise BackendConfigError(f"Unknown dispatch service {service!r}: use one of {', '.join(services_for_cli())}.")
    if not endpoint and cli:
        endpoint = settings.DISPATCHER_ENDPOINT
    if not endpoint and not (cli and service == "file"):
        # The CLI's file service has no default path, as in the reference: it must be named.
        endpoint = getattr(settings, ENDPOINT_SETTINGS.get(service, ""), "")
    if not api_key:
        api_key = getattr(settings, KEY_SETTINGS.get(service, ""), "") or settings.LLM_PROXY_API_KEY
    try:
        backend_class: type[Backend] = import_string(BACKENDS[service])
    except ImportError as exc:
        raise BackendConfigError(f"The {service} dispatch backend cannot be loaded: {exc}") from exc
    return backend_class(endpoint=endpoint or "", api_key=api_key or "")
