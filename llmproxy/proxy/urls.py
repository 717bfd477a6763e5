from django.urls import re_path

from . import views

# Everything under /v1/ goes to the proxy view, which applies the provider's endpoint list itself.
urlpatterns = [re_path(r"^(?P<path>.*)$", views.proxy)]
