"""Authentication of the management API: `Authorization: Bearer <MANAGEMENT_TOKEN>`."""

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from .errors import APIError

BEARER = "Bearer "  # case-sensitive, as in the reference


class ManagementTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <MANAGEMENT_TOKEN>`, compared in constant time."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(BEARER) or len(header) <= len(BEARER):
            raise APIError("missing or invalid Authorization header", 401)
        expected = settings.MANAGEMENT_TOKEN
        presented = header[len(BEARER) :]
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise APIError("invalid management token", 401)
        return (None, "management_token")


class ManagementTokenScheme(OpenApiAuthenticationExtension):
    target_class = ManagementTokenAuthentication
    name = "ManagementToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The MANAGEMENT_TOKEN of this deployment."}
