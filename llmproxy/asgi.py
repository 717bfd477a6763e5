"""ASGI entry point: `daphne llmproxy.asgi:application` (or uvicorn/granian, see docs/architecture.md).

/v1/* goes to the proxy's lean handler; everything else to Django's standard handler. The server refuses
to start without MANAGEMENT_TOKEN, outside development mode with unsafe secrets (llmproxy/checks.py: the
development SECRET_KEY, no ENCRYPTION_KEY, a weak MANAGEMENT_TOKEN), or with an unusable provider config
(API_CONFIG_PATH). Commands never import this module, so they work without those.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")

import django  # noqa: E402

django.setup()

from llmproxy.checks import refuse_unsafe_start  # noqa: E402
from llmproxy.proxy import state  # noqa: E402
from llmproxy.proxy.application import Application, install_daphne_hooks  # noqa: E402

refuse_unsafe_start()
state.runtime().providers.current()  # raises ProviderConfigError naming the problem

application = Application()
install_daphne_hooks(application)
