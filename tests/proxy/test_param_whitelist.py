"""The parameter whitelist cannot be skipped: whatever the Content-Type or Content-Encoding, and for form uploads."""

import gzip
import json
import zlib

import brotli
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy.proxy.errors import ProxyError
from llmproxy.proxy.params import Whitelist, check_request

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
FORBIDDEN = {**CHAT, "model": "gpt-3.5-turbo"}
NOT_ALLOWED = "Parameter 'model' value 'gpt-3.5-turbo' is not allowed. Allowed patterns: [gpt-4o gpt-4o-*]"


@pytest.fixture
def whitelisted(proxy_server):
    proxy_server.configure(param_whitelist={"model": ["gpt-4o", "gpt-4o-*"], "purpose": ["assistants"]})
    return proxy_server


def post(http, auth, body: bytes, **headers):
    return http.post("/v1/chat/completions", content=body, headers={**auth, **headers})


def assert_refused(response, code: str, error: str | None = None) -> None:
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["code"] == code, payload
    if error is not None:
        assert payload["error"] == error


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/plain", None, "application/x-json"]
)
def test_a_json_body_is_checked_whatever_its_content_type(http, auth, whitelisted, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert_refused(post(http, auth, json.dumps(FORBIDDEN).encode(), **headers), "param_not_allowed", NOT_ALLOWED)
    assert whitelisted.upstream.requests == []
    assert post(http, auth, json.dumps(CHAT).encode(), **headers).status_code == 200
    assert whitelisted.upstream.requests[-1].body == json.dumps(CHAT).encode()  # forwarded as sent


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o", "model": "gpt-3.5-turbo"}',
        b'{"model": "gpt-3.5-turbo", "model": "gpt-4o"}',
        b'{"mod\\u0065l": "gpt-3.5-turbo", "model": "gpt-4o"}',
        json.dumps(FORBIDDEN).encode("utf-16"),
        json.dumps(FORBIDDEN).encode("utf-16-le"),
        json.dumps(FORBIDDEN).encode("utf-32"),
    ],
    ids=["last-repeated", "first-repeated", "escaped-and-plain", "utf-16", "utf-16-le", "utf-32"],
)
def test_a_forbidden_value_cannot_hide_behind_a_repeated_key_or_another_unicode_encoding(http, auth, whitelisted, body):
    assert_refused(post(http, auth, body, **{"Content-Type": "application/json"}), "param_not_allowed")
    assert whitelisted.upstream.requests == []


@pytest.mark.parametrize(
    "content_type,body",
    [
        ("text/plain", b"model=gpt-3.5-turbo"),
        ("application/x-www-form-urlencoded", b"model=gpt-3.5-turbo"),
        ("application/json", b'{"model": "gpt-3.5-turbo", '),
        (None, b"\xff\xfe\x00garbage"),
        ("text/plain", b"[" * 100_000),
    ],
    ids=["text", "urlencoded", "truncated-json", "binary", "deep-nesting"],
)
def test_a_body_that_is_neither_json_nor_multipart_is_400(http, auth, whitelisted, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(http, auth, body, **headers)
    assert_refused(response, "invalid_request_body", "Request body is neither JSON nor multipart/form-data")
    assert whitelisted.upstream.requests == []


def test_an_empty_body_has_no_parameters_and_is_forwarded(http, auth, whitelisted):
    post(http, auth, b"", **{"Content-Type": "text/plain"})
    assert len(whitelisted.upstream.requests) == 1


def test_a_json_body_without_whitelisted_keys_is_forwarded_unparsed(http, auth, whitelisted):
    response = post(http, auth, b"not json at all", **{"Content-Type": "application/json"})
    assert len(whitelisted.upstream.requests) == 1 and response.status_code == 400  # the upstream's answer


@pytest.mark.parametrize(
    "coding,compress",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "br", "gzip-then-br"],
)
def test_an_encoded_body_is_decoded_for_the_check(http, auth, whitelisted, coding, compress):
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    assert_refused(post(http, auth, compress(json.dumps(FORBIDDEN).encode()), **headers), "param_not_allowed")
    assert whitelisted.upstream.requests == []
    allowed = compress(json.dumps(CHAT).encode())
    post(http, auth, allowed, **headers)
    assert whitelisted.upstream.requests[-1].body == allowed or whitelisted.upstream.requests[-1].json() == CHAT


@pytest.mark.parametrize(
    "coding,body,error",
    [
        ("zstd", b"(\xb5/\xfd", "Content-Encoding 'zstd' is not supported; use gzip, deflate, br or none"),
        ("gzip", b"\x1f\x8bnot gzip", "Request body is not valid gzip data"),
        ("gzip", gzip.compress(json.dumps(CHAT).encode())[:-12], None),
        ("gzip", gzip.compress(json.dumps(CHAT).encode()) + gzip.compress(json.dumps(FORBIDDEN).encode()), None),
        ("br", b"not brotli", "Request body is not valid br data"),
    ],
    ids=["unsupported", "corrupt-gzip", "truncated-gzip", "second-gzip-member", "corrupt-br"],
)
def test_a_body_with_a_bad_encoding_is_400(http, auth, whitelisted, coding, body, error):
    response = post(http, auth, body, **{"Content-Type": "application/json", "Content-Encoding": coding})
    assert_refused(response, "invalid_request_body", error)
    assert "Request body" in response.json()["error"] or "Content-Encoding" in response.json()["error"]
    assert whitelisted.upstream.requests == []


@pytest.mark.parametrize("coding,compress", [("gzip", gzip.compress), ("br", brotli.compress)])
def test_a_compressed_body_that_expands_past_max_request_size_is_400(
    http, auth, whitelisted, settings, coding, compress
):
    settings.MAX_REQUEST_SIZE = 1024 * 1024
    bomb = compress(b'{"model": "gpt-4o", "pad": "' + b"0" * (8 * 1024 * 1024) + b'"}')
    assert len(bomb) < 64 * 1024
    response = post(http, auth, bomb, **{"Content-Type": "application/json", "Content-Encoding": coding})
    assert_refused(
        response, "invalid_request_body", "Request body decodes to more than MAX_REQUEST_SIZE (1048576 bytes)"
    )
    assert whitelisted.upstream.requests == []


def test_multipart_field_names_are_checked_against_the_whitelist(http, auth, whitelisted):
    fields = {"x": (None, b"1"), "model": (None, b"gpt-3.5-turbo")}
    refused = http.post("/v1/chat/completions", headers=auth, files=fields)
    assert_refused(refused, "param_not_allowed", NOT_ALLOWED)
    upload = http.post("/v1/chat/completions", headers=auth, files={"model": ("m.txt", b"gpt-3.5-turbo")})
    assert_refused(upload, "param_not_allowed", NOT_ALLOWED)
    assert whitelisted.upstream.requests == []
    http.post("/v1/chat/completions", headers=auth, data={"model": "gpt-4o-mini"}, files={"f": ("a", b"x")})
    assert b'name="model"' in whitelisted.upstream.requests[-1].body


def test_a_multipart_field_name_in_rfc_2231_form_is_checked_too(http, auth, whitelisted):
    body = b"--b\r\nContent-Disposition: form-data; name*=utf-8''model\r\n\r\ngpt-3.5-turbo\r\n--b--\r\n"
    response = post(http, auth, body, **{"Content-Type": "multipart/form-data; boundary=b"})
    assert_refused(response, "param_not_allowed", NOT_ALLOWED)


@pytest.mark.parametrize(
    "body",
    [
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-3.5-turbo\r\n',  # no closing boundary
        b"no boundary anywhere",
        b"--b\r\nContent-Disposition: form-data\r\n\r\ngpt-3.5-turbo\r\n--b--\r\n",  # a part without a name
    ],
    ids=["unterminated", "no-parts", "nameless-part"],
)
def test_a_malformed_multipart_body_is_400(http, auth, whitelisted, body):
    response = post(http, auth, body, **{"Content-Type": "multipart/form-data; boundary=b"})
    assert_refused(response, "invalid_request_body")
    assert whitelisted.upstream.requests == []


def test_the_openai_sdk_is_checked_as_before(whitelisted, token_pair):
    client = openai.OpenAI(base_url=whitelisted.url + "/v1", api_key=token_pair[1], max_retries=0, timeout=10)
    completion = client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])
    assert completion.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=CHAT["messages"])
    assert refused.value.response.json()["code"] == "param_not_allowed"
    with pytest.raises(openai.BadRequestError) as upload:  # multipart/form-data from the SDK
        client.files.create(file=("batch.jsonl", b"{}\n"), purpose="batch")
    payload = upload.value.response.json()
    assert payload["code"] == "param_not_allowed" and "'purpose' value 'batch'" in payload["error"]
    assert [r.path for r in whitelisted.upstream.requests] == ["/v1/chat/completions"]


def test_a_boundary_lookalike_inside_a_value_does_not_end_the_part(http, auth, whitelisted):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n--bx\r\n'
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-3.5-turbo\r\n--b--\r\n'
    )
    response = post(http, auth, body, **{"Content-Type": "multipart/form-data; boundary=b"})
    assert_refused(response, "param_not_allowed", NOT_ALLOWED)


WHITELIST = {"model": Whitelist(("gpt-4o",))}
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/plain", "", "multipart/form-data; boundary=b", "multipart/form-data", "a/b; x"]
)
ENCODINGS = st.sampled_from(["", "gzip", "deflate", "br", "identity", "gzip, br", "zstd", ","])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES, encoding=ENCODINGS, compress=st.booleans())
def test_any_body_is_either_passed_or_refused_with_a_400(body, content_type, encoding, compress):
    if compress and encoding == "gzip":
        body = gzip.compress(body)
    meta = {"CONTENT_TYPE": content_type, "HTTP_CONTENT_ENCODING": encoding}
    try:
        check_request(body, meta, WHITELIST)
    except ProxyError as exc:
        assert exc.status == 400 and exc.code in ("param_not_allowed", "invalid_request_body")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(value=st.recursive(st.none() | st.booleans() | st.floats() | st.text(), st.lists, max_leaves=20))
def test_any_json_value_of_a_whitelisted_key_is_judged_without_error(value):
    body = json.dumps({"model": value, "model ": 1}).encode()
    for meta in ({"CONTENT_TYPE": "application/json"}, {"CONTENT_TYPE": "text/plain"}):
        try:
            check_request(body, meta, WHITELIST)
        except ProxyError as exc:
            assert exc.code == "param_not_allowed" and value != "gpt-4o"


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000), content_type=CONTENT_TYPES, encoding=ENCODINGS, compress=st.booleans())
def test_arbitrary_bodies_without_a_token_are_refused_with_a_4xx(
    http, whitelisted, body, content_type, encoding, compress
):
    if compress and encoding == "br":
        body = brotli.compress(body)
    headers = {"Content-Type": content_type, "Content-Encoding": encoding}
    answer = http.post("/v1/chat/completions", content=body, headers=headers)
    assert answer.status_code in (400, 401) and answer.headers["content-type"] == "application/json"
    # 401, or 429 once this address passes MANAGEMENT_AUTH_FAILURE_LIMIT failures within the examples' window.
    assert http.post("/manage/projects", content=body, headers=headers).status_code in (401, 429)
    assert whitelisted.upstream.requests == []
