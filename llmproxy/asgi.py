"""ASGI entry point: `daphne llmproxy.asgi:application`.

/v1/* goes to the proxy's lean handler; everything else to Django's standard handler.
"""

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

if not settings.MANAGEMENT_TOKEN:
    raise ImproperlyConfigured("MANAGEMENT_TOKEN is not set: the server refuses to start without it.")

application = ASGIStaticFilesHandler(get_asgi_application())
