"""The base of every /manage view: management-token auth, JSON only, JSON errors, the reference's methods."""

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from .auth import ManagementTokenAuthentication
from .errors import exception_handler


class JSONOnly(BaseContentNegotiation):
    """JSON whatever the client's Accept header says, as the reference does."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ManagementView(APIView):
    """Base of every /manage view."""

    # The docstring above is the OpenAPI description of any view that has none of its own: keep it short.
    # Management-token auth, JSON errors, the reference's method handling. `failure_messages` (method -> the
    # reference's 500 message) shapes what a database failure looks like. A view that also sets
    # `audit_actions` (method -> the audit action written as a failure on an unexpected error) must provide
    # `audit_unexpected_failure(request, action, message)`, as `audit.api.AuditedManagementView` does.

    authentication_classes = [ManagementTokenAuthentication]
    permission_classes = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    metadata_class = None  # OPTIONS is not answered: 405 as in the reference
    http_method_names = ["get", "post", "patch", "delete"]  # HEAD is 405 too (Go's mux does not map it to GET)
    failure_messages: dict[str, str] = {}

    @property
    def default_response_headers(self):
        return {}  # DRF adds Allow (and Vary) to every response; Allow goes on 405s only

    def get_exception_handler(self):
        return exception_handler
