"""The provider YAML (the reference's api_providers.yaml), its validation, and the whitelist's glob semantics."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmproxy.proxy.params import BadPattern, Whitelist, check_body, go_format
from llmproxy.proxy.providers import FALLBACK_ENDPOINTS, ProviderConfigError, load_provider

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "api_providers.yaml"
MINIMAL = """
default_api: openai
apis:
  openai:
    base_url: http://upstream.example:8080/ignored/path
    allowed_endpoints: [/v1/chat/completions]
    allowed_methods: [get, POST]
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    return str(path)


def test_the_shipped_config_loads_with_the_reference_values():
    provider = load_provider(str(SHIPPED), "openai", "https://unused.example")
    assert provider.base_url == "https://api.openai.com"
    assert provider.allowed_methods == {"GET", "POST", "OPTIONS"}
    assert "/v1/chat/completions" in provider.allowed_endpoints
    assert (provider.timeouts.response_header, provider.timeouts.idle, provider.timeouts.request) == (30, 90, 120)
    assert provider.param_whitelist["model"].allows("gpt-4o-mini")
    assert "http://localhost:4000" in provider.allowed_origins


def test_default_api_provider_selects_another_provider_or_falls_back_to_default_api():
    assert load_provider(str(SHIPPED), "anthropic", "x").base_url == "https://api.anthropic.com"
    assert load_provider(str(SHIPPED), "no-such-provider", "x").name == "openai"


def test_a_missing_file_means_the_builtin_openai_provider(tmp_path):
    provider = load_provider(str(tmp_path / "absent.yaml"), "openai", "http://127.0.0.1:9999/v1")
    assert provider.base_url == "http://127.0.0.1:9999"
    assert provider.allowed_endpoints == FALLBACK_ENDPOINTS
    assert provider.allowed_methods == {"GET", "POST", "DELETE"}


def test_base_url_keeps_only_scheme_and_host_and_methods_are_case_insensitive(tmp_path):
    provider = load_provider(write(tmp_path, MINIMAL), "openai", "x")
    assert provider.base_url == "http://upstream.example:8080"
    assert provider.allowed_methods == {"GET", "POST"}
    assert provider.endpoint_allowed("/v1/chat/completions/anything") and not provider.endpoint_allowed("/v1/models")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default_api: [", "cannot read it as YAML"),
        ("- a list", "must be a mapping"),
        ("default_api: openai\napis: {}", "at least one provider"),
        (MINIMAL.replace("default_api: openai", "default_api: other"), "default_api 'other'"),
        (MINIMAL.replace("    base_url: http://upstream.example:8080/ignored/path\n", ""), "apis.openai.base_url"),
        (MINIMAL.replace("[/v1/chat/completions]", "[]"), "apis.openai.allowed_endpoints"),
        (MINIMAL.replace("[get, POST]", "[]"), "apis.openai.allowed_methods"),
        (MINIMAL.replace("http://upstream.example:8080/ignored/path", "upstream.example"), "absolute http(s) URL"),
        (MINIMAL + "    timeouts: {response_header: soon}\n", "apis.openai.timeouts.response_header"),
        (MINIMAL + "    connection: {max_idle_connections: -1}\n", "max_idle_connections"),
        (MINIMAL + "    param_whitelist: {model: ['gpt-[']}\n", "apis.openai.param_whitelist.model"),
    ],
)
def test_an_unusable_file_is_an_error_naming_the_problem(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ProviderConfigError) as caught:
        load_provider(path, "openai", "x")
    assert path in str(caught.value) and problem in str(caught.value)


def test_go_durations_are_understood(tmp_path):
    text = MINIMAL + "    timeouts: {request: 1m30s, response_header: 250ms, idle_connection: 2h, connect: 5}\n"
    timeouts = load_provider(write(tmp_path, text), "openai", "x").timeouts
    assert (timeouts.request, timeouts.response_header, timeouts.idle, timeouts.connect) == (90, 0.25, 7200, 5)


def test_the_server_refuses_to_start_with_an_invalid_provider_file(tmp_path):
    path = write(tmp_path, MINIMAL.replace("[get, POST]", "[]"))
    env = {**os.environ, "API_CONFIG_PATH": path, "LLM_PROXY_EVENT_BUS": "in-memory"}
    result = subprocess.run(
        [sys.executable, "-c", "import llmproxy.asgi"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "apis.openai.allowed_methods must list at least one method" in result.stderr


# --- the whitelist: Go's path.Match ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "allowed"),
    [
        ("gpt-4o", "gpt-4o", True),
        ("gpt-4o", "gpt-4o-mini", False),
        ("gpt-4o-*", "gpt-4o-mini", True),
        ("gpt-4o-*", "gpt-4o-", True),
        ("gpt-4o-*", "gpt-4o-a/b", False),  # * does not cross /
        ("gpt-?", "gpt-5", True),
        ("gpt-?", "gpt-/", False),
        ("gpt-[45]", "gpt-4", True),
        ("gpt-[4-5]", "gpt-6", False),
        ("gpt-[^4]", "gpt-4", False),
        ("gpt-[^4]", "gpt-5", True),
        ("gpt\\*", "gpt*", True),
        ("gpt\\*", "gpt-4", False),
        ("a.b", "axb", False),  # regular-expression characters are literal
        ("*", "", True),
    ],
)
def test_patterns_follow_go_path_match(pattern, value, allowed):
    assert Whitelist((pattern,)).allows(value) is allowed


@pytest.mark.parametrize("pattern", ["gpt-[", "gpt-[]", "gpt\\", "gpt-[a-]", "[-a]"])
def test_malformed_patterns_are_refused(pattern):
    with pytest.raises(BadPattern):
        Whitelist((pattern,))


def test_values_are_compared_as_go_prints_them():
    assert [go_format(v) for v in (1, 1.5, True, None, 1e21, 1e-5, [1, "a"], {"b": 1})] == [
        "1", "1.5", "true", "<nil>", "1e+21", "1e-05", "[1 a]", "map[b:1]"
    ]  # fmt: skip
    assert Whitelist(("1",)).allows(1) and Whitelist(("true",)).allows(True)


def test_only_present_top_level_fields_are_checked():
    whitelist = {"model": Whitelist(("gpt-4o",))}
    assert check_body(b'{"messages": []}', whitelist) is None
    assert check_body(b"not json", whitelist) is None
    assert check_body(b'{"model": "gpt-4o"}', whitelist) is None
    assert check_body(b'{"mod\\u0065l": "gpt-3"}', whitelist).startswith("Parameter 'model' value 'gpt-3'")
