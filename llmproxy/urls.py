from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from . import health
from .manage.errors import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health.health),
    path("ready", health.ready),
    path("live", health.live),
    path("manage/", include("llmproxy.manage.urls")),
]
if settings.ENABLE_METRICS:
    urlpatterns.append(path("", include("instrumentation.urls")))  # METRICS_PATH and METRICS_PATH/prometheus
# Must stay last: any other path is a JSON 404, whatever DEBUG says (Django's own 404 page is HTML, and a
# technical page under DEBUG). /admin keeps the admin's pages and its redirect of `/admin` to `/admin/`.
urlpatterns.append(re_path(r"^(?!admin(?:/|$))", not_found))
