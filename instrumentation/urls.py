"""METRICS_PATH (JSON) and METRICS_PATH/prometheus, included by llmproxy/urls.py when ENABLE_METRICS is true."""

from django.conf import settings
from django.urls import path

from instrumentation import views

_base = settings.METRICS_PATH.strip("/")

urlpatterns = [
    path(_base, views.metrics_json, name="metrics"),
    path(f"{_base}/prometheus", views.metrics_prometheus, name="metrics-prometheus"),
]
