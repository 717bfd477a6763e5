"""Strict request parsing for /manage: body size, JSON, exact fields, ids."""

import json
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import serializers

from .errors import APIError, invalid_body


def read_body(request) -> bytes:
    """The raw body, refused with 413 beyond MAX_REQUEST_SIZE (by Content-Length, then by actual size)."""
    limit = settings.MAX_REQUEST_SIZE
    too_large = APIError(
        "Request body too large", 413, audit={"validation_error": "request body too large"}, code="request_too_large"
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


def read_json(request, *, message: str = "invalid request body"):
    """The decoded JSON body, whatever the Content-Type (the reference decodes without looking at it)."""
    body = read_body(request)
    if not body.strip():
        raise invalid_body("the request body is empty: send a JSON object", message=message)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise invalid_body(f"the request body is not valid JSON: {exc}", message=message) from None


def parse_body(request, serializer_class: type[serializers.Serializer]) -> dict:
    """Validate a JSON object body strictly: no unknown fields, exact JSON types, no nulls (leave a field out)."""
    data = read_json(request)
    if not isinstance(data, dict):
        raise invalid_body(f"the request body must be a JSON object, not {_json_type(data)}")
    serializer = serializer_class(data=data)
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        raise invalid_body(f"unknown field: {unknown[0]}")
    if nulls := sorted(key for key, value in data.items() if value is None):
        raise invalid_body(f"{nulls[0]} must not be null: leave the field out instead")
    if not serializer.is_valid():
        field, problems = next(iter(serializer.errors.items()))
        raise invalid_body(f"{field} {problems[0]}")
    return dict(serializer.validated_data)


def _json_type(value) -> str:
    names = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), "a value")


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def get_or_404(queryset, pk, what: str):
    """The row with primary key `pk`, or APIError 404 `<what> not found` (audited); ids that are not UUIDs too."""
    row = None
    if (parsed := parse_uuid(pk)) is not None:
        row = queryset.filter(pk=parsed).first()
    if row is None:
        raise APIError(f"{what} not found", 404, audit={"error_type": f"{what} not found"})
    return row
