from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health.health),
    path("ready", health.ready),
    path("live", health.live),
    path("manage/", include("llmproxy.manage_urls")),
    path("v1/", include("llmproxy.proxy.urls")),
]
if settings.ENABLE_METRICS:
    urlpatterns.append(path("", include("instrumentation.urls")))  # METRICS_PATH and METRICS_PATH/prometheus
