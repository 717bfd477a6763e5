"""ASGI entry point: `daphne llmproxy.asgi:application` (or uvicorn/granian, see docs/architecture.md).

/v1/* goes to the proxy's lean handler; everything else to Django's standard handler. The server refuses
to start without MANAGEMENT_TOKEN or with an unusable provider config (API_CONFIG_PATH).
"""

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from llmproxy.proxy import state  # noqa: E402
from llmproxy.proxy.application import Application, install_daphne_hooks  # noqa: E402

if not settings.MANAGEMENT_TOKEN:
    raise ImproperlyConfigured("MANAGEMENT_TOKEN is not set: the server refuses to start without it.")
state.runtime().providers.current()  # raises ProviderConfigError naming the problem

application = Application()
install_daphne_hooks(application)
