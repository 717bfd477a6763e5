"""The cache's rules as pure functions: keys, Cache-Control, TTL, conditionals (the reference's caching rules)."""

import hashlib

import pytest

from llmproxy.proxy import cache_rules as rules

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent


def headers(**values):
    table = {name.replace("_", "-").lower(): value for name, value in values.items()}
    return lambda name: table.get(name.lower(), "")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_key_is_the_reference_formula():
    base = sha("GET|/v1/models|a=1,2&b=&")
    expected = sha(base + "accept:application/json|accept-language:de|")
    got = rules.cache_key("GET", "/v1/models", "b=&a=2&a=1", headers(Accept=" application/json ", Accept_Language="de"))
    assert got == expected


def test_query_order_does_not_change_the_key():
    none = headers()
    assert rules.cache_key("GET", "/v1/models", "x=1&y=2", none) == rules.cache_key(
        "GET", "/v1/models", "y=2&x=1", none
    )


def test_accept_headers_separate_keys():
    json_key = rules.cache_key("GET", "/v1/models", "", headers(Accept="application/json"))
    text_key = rules.cache_key("GET", "/v1/models", "", headers(Accept="text/plain"))
    assert json_key != text_key


def test_post_key_carries_body_hash_and_ttl_suffix():
    key = rules.cache_key("POST", "/v1/chat/completions", "", headers(), body_hash="ab" * 32, ttl_suffix="|ttl=max=60")
    assert key.endswith("|body=" + "ab" * 32 + "|ttl=max=60")
    assert len(key.split("|")[0]) == 64


def test_ttl_suffix_prefers_s_maxage():
    assert rules.ttl_suffix(rules.parse_cache_control("public, max-age=60, s-maxage=30")) == "|ttl=smax=30"
    assert rules.ttl_suffix(rules.parse_cache_control("public, max-age=60")) == "|ttl=max=60"
    assert rules.ttl_suffix(rules.parse_cache_control("max-age=60")) == ""


def test_client_opt_in_needs_public_and_a_positive_age():
    assert rules.client_ttl(rules.parse_cache_control("public, max-age=60")) == 60
    assert rules.client_ttl(rules.parse_cache_control("Public, S-MaxAge=5, max-age=60")) == 5
    assert rules.client_ttl(rules.parse_cache_control("max-age=60")) == 0
    assert rules.client_ttl(rules.parse_cache_control("public, max-age=0")) == 0
    assert rules.client_ttl(rules.parse_cache_control("public, max-age=abc")) == 0


def test_revalidation_directives():
    assert rules.wants_revalidation(rules.parse_cache_control("no-cache"))
    assert rules.wants_revalidation(rules.parse_cache_control("max-age=0"))
    assert not rules.wants_revalidation(rules.parse_cache_control("max-age=10"))


def test_vary_key_depends_only_on_the_varied_headers():
    one = rules.vary_key("x-tenant-flavour, Accept", headers(X_Tenant_Flavour="a", Accept="x", Other="1"))
    two = rules.vary_key("Accept,X-Tenant-Flavour", headers(X_Tenant_Flavour="a", Accept="x", Other="2"))
    three = rules.vary_key("Accept,X-Tenant-Flavour", headers(X_Tenant_Flavour="b", Accept="x"))
    assert one == two != three
    assert rules.vary_key("", headers()) == "" and rules.vary_key("*", headers()) == ""


def decide(status=200, cc="", vary="", stream=False, forced=0, default=0, stream_caching=False, no_store=False):
    return rules.store_decision(
        status=status,
        response_cc=cc,
        vary=vary,
        is_stream=stream,
        forced_ttl=forced,
        default_ttl=default,
        stream_caching=stream_caching,
        request_no_store=no_store,
    )


def test_response_lifetime_from_s_maxage_then_max_age():
    assert decide(cc="public, max-age=60") == rules.StoreDecision(60)
    assert decide(cc="max-age=60, s-maxage=10") == rules.StoreDecision(10)


def test_private_and_no_store_answers_are_never_stored_even_when_forced():
    assert decide(cc="private, max-age=60", forced=30).ttl == 0
    assert decide(cc="no-store", forced=30).ttl == 0
    assert decide(cc="max-age=60", forced=30).reason == "not-cacheable"  # not shareable: no fallback to forced


def test_no_cache_control_gets_the_client_forced_ttl():
    assert decide(forced=30) == rules.StoreDecision(30, forced=True)
    assert decide() == rules.StoreDecision(0, reason="ttl-zero")


def test_default_ttl_applies_only_to_bare_public_answers():
    assert decide(cc="public", default=120) == rules.StoreDecision(120)
    assert decide(cc="", default=120).ttl == 0
    assert decide(cc="public, max-age=0", default=120).ttl == 0
    assert decide(cc="public", default=0).ttl == 0


def test_non_2xx_is_never_stored():
    for status in (301, 404, 500, 503):
        assert decide(status=status, cc="public, max-age=60", forced=60).reason == "status-not-cacheable"


def test_streams_need_stream_caching():
    assert decide(cc="public, max-age=60", stream=True).ttl == 0
    assert decide(forced=60, stream=True).ttl == 0
    assert decide(forced=60, stream=True, stream_caching=True).ttl == 60


def test_vary_star_and_request_no_store_are_not_stored():
    assert decide(cc="public, max-age=60", vary="*").ttl == 0
    assert decide(cc="public, max-age=60", no_store=True).ttl == 0


def test_stored_headers_drop_hop_by_hop_request_specific_and_cors_headers():
    kept = rules.stored_headers(
        [
            ("Content-Type", "application/json"),
            ("X-Request-ID", "old"),
            ("Date", "x"),
            ("Set-Cookie", "a=b"),
            ("Access-Control-Allow-Origin", "https://a.example"),
            ("ETag", '"v1"'),
            ("Cache-Control", "no-cache"),
        ],
        rules.StoreDecision(60, forced=True),
    )
    assert kept == {"Content-Type": ["application/json"], "ETag": ['"v1"'], "Cache-Control": ["public, max-age=60"]}


def test_if_none_match_uses_weak_comparison_and_star():
    assert rules.not_modified('"a", W/"v1"', "", '"v1"', "")
    assert rules.not_modified("*", "", "", "")
    assert not rules.not_modified('"v2"', "Wed, 21 Oct 2099 07:28:00 GMT", '"v1"', "Wed, 21 Oct 2015 07:28:00 GMT")


def test_if_modified_since_compares_with_last_modified():
    last = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert rules.not_modified("", last, "", last)
    assert rules.not_modified("", "Thu, 22 Oct 2015 07:28:00 GMT", "", last)
    assert not rules.not_modified("", "Tue, 20 Oct 2015 07:28:00 GMT", "", last)
    assert not rules.not_modified("", "garbage", "", last)


def test_request_policy_sums_up_the_clients_cache_control():
    assert rules.request_policy("public, max-age=60") == rules.RequestPolicy(False, False, 60, "|ttl=max=60")
    assert rules.request_policy("no-store, no-cache") == rules.RequestPolicy(True, True, 0, "")
    assert rules.request_policy("") == rules.RequestPolicy(False, False, 0, "")
