"""Kept for `llmproxy/urls.py`, which includes it by name: the routes are in `llmproxy/manage/urls.py`."""

from llmproxy.manage.urls import urlpatterns

__all__ = ["urlpatterns"]
