"""Authentication of the management API: `Authorization: Bearer <MANAGEMENT_TOKEN>`.

Failed attempts are throttled and audited per client IP (auth_failures.py): an IP over the limit gets 429
with Retry-After whatever token it sends, until its window ends.
"""

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from llmproxy.clientip import client_ip

from . import auth_failures
from .errors import APIError

BEARER = "Bearer "  # case-sensitive, as in the reference


class ManagementTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <MANAGEMENT_TOKEN>`, compared in constant time."""

    def authenticate(self, request):
        ip = client_ip(request)
        wait = auth_failures.blocked_for(ip)
        failure = _failure(request.META.get("HTTP_AUTHORIZATION", ""))
        if failure:
            auth_failures.record_failure(request, ip, failure, throttled=bool(wait))
        if wait:
            throttled = APIError(
                "too many failed management authentications from this address", 429, retry_after_seconds=wait
            )
            throttled.headers["Retry-After"] = str(wait)
            raise throttled
        if failure:
            raise APIError(failure, 401)
        return (None, "management_token")


def _failure(header: str) -> str:
    """Why the Authorization header does not authenticate ("" when it does)."""
    if not header.startswith(BEARER) or len(header) <= len(BEARER):
        return "missing or invalid Authorization header"
    expected = settings.MANAGEMENT_TOKEN
    presented = header[len(BEARER) :]
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return "invalid management token"
    return ""


class ManagementTokenScheme(OpenApiAuthenticationExtension):
    target_class = ManagementTokenAuthentication
    name = "ManagementToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The MANAGEMENT_TOKEN of this deployment."}
