"""The drf-spectacular internals the schema extensions rely on, each behind one named helper.

drf-spectacular's public extension API lets an extension replace the schema of a field or serializer, but
not start from the schema drf-spectacular itself would have made: that needs `AutoSchema._map_serializer_field`
and `AutoSchema._map_serializer` with `bypass_extensions=True` (the way drf-spectacular's own extensions do
it). Both are private, so they are used only here; `REQUIREMENTS` lists them for
`tests/manage/test_compat_spectacular.py`, which fails naming the helper when an upgrade removes one.
"""

import inspect

from drf_spectacular.openapi import AutoSchema

# helper name -> (class, private method, keyword argument the helper passes)
REQUIREMENTS = {
    "default_field_schema": (AutoSchema, "_map_serializer_field", "bypass_extensions"),
    "default_serializer_schema": (AutoSchema, "_map_serializer", "bypass_extensions"),
}


def default_field_schema(auto_schema: AutoSchema, field, direction: str) -> dict:
    """The schema drf-spectacular makes for `field` when no extension of ours is applied."""
    return auto_schema._map_serializer_field(field, direction, bypass_extensions=True)


def default_serializer_schema(auto_schema: AutoSchema, serializer, direction: str) -> dict:
    """The schema drf-spectacular makes for `serializer` when no extension of ours is applied."""
    return auto_schema._map_serializer(serializer, direction, bypass_extensions=True)


def missing_internals() -> list[str]:
    """One line per helper whose private attribute the installed drf-spectacular no longer has."""
    problems = []
    for helper, (cls, attribute, keyword) in REQUIREMENTS.items():
        method = getattr(cls, attribute, None)
        if method is None:
            problems.append(f"{helper}: {cls.__name__}.{attribute} is gone")
        elif keyword not in inspect.signature(method).parameters:
            problems.append(f"{helper}: {cls.__name__}.{attribute} no longer takes {keyword}=")
    return problems
