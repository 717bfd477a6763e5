"""POST /manage/cache/purge: delete cached answers, exactly (method + url) or by key prefix, as the
reference's purge endpoint does."""

import json

from django.conf import settings
from django.http import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import AuditContext
from llmproxy.manage import TOO_LARGE, UNAUTHORIZED, ManagementView, StrictCharField, error, error_response, read_body

from .cache_purge import URL_PATTERN, PurgeError, cache_purge, purge_failed


class PurgeRequestSerializer(serializers.Serializer[dict[str, str]]):
    """Unknown fields are ignored, as in the reference."""

    method = StrictCharField(
        required=True,
        schema={"minLength": 1},
        help_text="HTTP method of the cached request (required with prefix too).",
    )
    url = StrictCharField(
        required=True,
        schema={"minLength": 1, "pattern": URL_PATTERN},
        help_text="URL or path of the cached request; only path and query matter. No control characters, "
        "and every `%` must start an escape.",
    )
    prefix = StrictCharField(
        allow_null=True, help_text="Delete every key starting with this (the hex keys of `X-PROXY-CACHE-KEY`)."
    )

    class Meta:
        ref_name = "CachePurgeRequest"


class PurgeResultSerializer(serializers.Serializer[dict[str, object]]):
    deleted = serializers.JSONField(
        help_text="Exact purge: true when the request's entry was removed in at least one project. "
        "Prefix purge: how many entries were removed."
    )

    class Meta:
        ref_name = "CachePurgeResult"


class CachePurgeView(ManagementView):
    @extend_schema(
        operation_id="cache_purge",
        tags=["cache"],
        summary="Purge cached responses (every project)",
        request=PurgeRequestSerializer,
        responses={
            200: PurgeResultSerializer,
            400: error_response(
                '`{"error":"caching is disabled"}`, `{"error":"invalid JSON"}`, '
                '`{"error":"method and url are required"}` or `{"error":"invalid URL"}`.'
            ),
            401: UNAUTHORIZED,
            413: TOO_LARGE,
            503: error_response('`{"error":"cache backend unavailable"}` (e.g. Redis down): nothing was purged.'),
        },
    )
    def post(self, request: Request) -> HttpResponseBase:
        ctx = AuditContext.from_request(request)
        try:
            if not settings.HTTP_CACHE_ENABLED:
                raise purge_failed(ctx, PurgeError("caching is disabled", reason="caching_disabled"))
            data = _parse(request, ctx)
            result = cache_purge(method=data["method"], url=data["url"], prefix=data["prefix"], ctx=ctx)
        except PurgeError as exc:
            return error(exc.message, exc.status)
        return Response(result)


def _parse(request: Request, ctx: AuditContext) -> dict[str, str]:
    """`{"method", "url", "prefix"?}` strings; unknown fields are ignored, anything else is "invalid JSON"."""
    try:
        data = json.loads(read_body(request))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        fields = {name: "" if data.get(name) is None else data[name] for name in ("method", "url", "prefix")}
        if not all(isinstance(value, str) for value in fields.values()):
            raise ValueError("not a string")
    except (ValueError, RecursionError):
        raise purge_failed(ctx, PurgeError("invalid JSON", reason="invalid_json")) from None
    return fields
