"""The drf-spectacular internals behind `llmproxy/manage/compat_spectacular.py` still exist in the installed version."""

from drf_spectacular.openapi import AutoSchema

from llmproxy.manage import compat_spectacular


def test_every_private_drf_spectacular_attribute_a_helper_relies_on_is_still_there():
    problems = compat_spectacular.missing_internals()
    assert problems == [], (
        "drf-spectacular changed under llmproxy/manage/compat_spectacular.py; fix these helpers: " + "; ".join(problems)
    )


def test_a_helper_whose_attribute_is_gone_is_named(monkeypatch):
    monkeypatch.delattr(AutoSchema, "_map_serializer_field")

    assert compat_spectacular.missing_internals() == ["default_field_schema: AutoSchema._map_serializer_field is gone"]


def test_every_helper_is_listed_in_the_requirements():
    helpers = {name for name in vars(compat_spectacular) if name.startswith("default_")}
    assert helpers == set(compat_spectacular.REQUIREMENTS)
