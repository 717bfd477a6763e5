"""The project's Celery app, on a queue of the test's own: the broker Redis is shared by parallel test runs."""

import os

from llmproxy.celery import app

app.conf.task_default_queue = os.environ["TEST_CELERY_QUEUE"]

__all__ = ["app"]
