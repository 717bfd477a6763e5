"""Kept for the imports of `llmproxy/urls.py` and `llmproxy/proxy/cache_api.py`: the framework is `llmproxy.manage`."""

from llmproxy.manage import (
    TOO_LARGE,
    UNAUTHORIZED,
    ManagementView,
    StrictCharField,
    error,
    error_response,
    not_found,
    read_body,
)

__all__ = [
    "TOO_LARGE",
    "UNAUTHORIZED",
    "ManagementView",
    "StrictCharField",
    "error",
    "error_response",
    "not_found",
    "read_body",
]
