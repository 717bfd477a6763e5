"""Request and response fields for /manage: JSON types exactly as sent, schema constraints without DRF's own
messages, and the reference's timestamps."""

from datetime import UTC

from rest_framework import serializers


class SchemaHintsMixin:
    """`schema={...}` adds constraints to the field's OpenAPI schema only; the views check them with the
    reference's messages and order."""

    def __init__(self, *args, schema: dict | None = None, **kwargs) -> None:
        self.schema_hints = schema or {}
        super().__init__(*args, **kwargs)


class StrictCharField(SchemaHintsMixin, serializers.CharField):
    default_error_messages = {
        "invalid": "must be a string",
        "nul": "must not contain NUL characters",
        "encoding": "must be valid Unicode text",
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        # "" passes through: the views judge blank values with the reference's messages
        # ("name and api_key are required"), and the schema says so with its own minLength.
        return "" if data == "" else super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            self.fail("nul")  # no database column can hold it
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("encoding")  # lone surrogates from \\ud800 escapes
        return data


class StrictBooleanField(SchemaHintsMixin, serializers.BooleanField):
    default_error_messages = {"invalid": "must be a boolean (true or false)"}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(SchemaHintsMixin, serializers.IntegerField):
    default_error_messages = {"invalid": "must be an integer"}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class RequestSerializer(serializers.Serializer):
    """A request body: unknown fields are refused, so the schema says `additionalProperties: false`.

    `schema_required` lists the fields the schema marks required; the views check them with the
    reference's messages (e.g. "name and api_key are required").
    """

    schema_required: tuple[str, ...] = ()
    schema_extra: dict = {}  # further JSON-schema constraints the view enforces (e.g. minProperties)


class RFC3339Field(serializers.DateTimeField):
    """`2026-01-06T17:50:11.123456Z`: RFC 3339, UTC, as the reference's Go timestamps."""

    def to_representation(self, value):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
