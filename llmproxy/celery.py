"""The Celery application: dispatch workers drain the event stream (see dispatch/tasks.py)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy.settings")

app = Celery("llmproxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
