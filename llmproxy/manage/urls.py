"""/manage/* routes: the reference's management API, at the reference's paths, without trailing slashes.

The id patterns take any text, including an empty id, one with a slash or a newline, so that the views
answer the reference's 400s (`invalid project id`, `token ID is required`, ...) instead of a bare 404.
"""

from django.urls import path, re_path

from audit.api import AuditEventDetailView, AuditEventListView
from llmproxy.proxy.cache_api import CachePurgeView
from projects.api import ProjectDetailView, ProjectListView, ProjectTokensRevokeView
from tokens.api import TokenDetailView, TokenListView

from .errors import not_found
from .schema import OpenAPIView

urlpatterns = [
    path("openapi.json", OpenAPIView.as_view(), name="manage-openapi"),
    path("projects", ProjectListView.as_view(), name="manage-projects"),
    re_path(r"^projects/(?P<project_id>[\s\S]*)/tokens/revoke$", ProjectTokensRevokeView.as_view()),
    re_path(r"^projects/(?P<project_id>[\s\S]*)$", ProjectDetailView.as_view(), name="manage-project"),
    path("tokens", TokenListView.as_view(), name="manage-tokens"),
    re_path(r"^tokens/(?P<token_id>[\s\S]*)$", TokenDetailView.as_view(), name="manage-token"),
    path("audit", AuditEventListView.as_view(), name="manage-audit"),
    re_path(r"^audit/(?P<event_id>[\s\S]*)$", AuditEventDetailView.as_view(), name="manage-audit-event"),
    path("cache/purge", CachePurgeView.as_view(), name="manage-cache-purge"),
    # Add new /manage routes above this line.
]
# Must stay last: any other /manage path is a JSON 404.
urlpatterns.append(re_path(r"", not_found))
