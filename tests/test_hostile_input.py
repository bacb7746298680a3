"""Property tests: any JSON value in any field of a request body is 2xx or a 400 in the
contract's shape (or a 409 for a taken value), never a 500.

New request schemas are covered by adding a line to BODIES.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

VALID_INFLUENCER = {
    "name": "Prop Test",
    "username": "prop.test",
    "email": "prop@example.com",
    "phone": "9000000001",
    "nicheIds": [1],
}
VALID_BRAND = {
    "email": "propb@example.com",
    "password": "a long password",
    "phone": "9000000002",
    "brandName": "Prop Brand",
    "username": "prop.brand",
    "nicheIds": [2],
}

# (method, path, a valid body, fields to fuzz: each field, plus one unknown)
BODIES = [
    (
        "POST",
        "/influencers",
        VALID_INFLUENCER,
        [
            "name",
            "username",
            "email",
            "phone",
            "dateOfBirth",
            "gender",
            "bio",
            "profileImage",
            "nicheIds",
        ],
    ),
    (
        "POST",
        "/brands",
        VALID_BRAND,
        [
            "email",
            "password",
            "phone",
            "brandName",
            "username",
            "legalEntityName",
            "companyType",
            "brandEmailId",
            "pocName",
            "pocDesignation",
            "pocEmailId",
            "pocContactNumber",
            "brandBio",
            "profileImage",
            "incorporationDocument",
            "gstDocument",
            "panDocument",
            "nicheIds",
        ],
    ),
]
OWN = "{own}"  # replaced by the fuzzed account's id; requests carry its token
BODIES += [
    ("POST", "/auth/otp/send", {"phone": "9000000003"}, ["phone", "accountType"]),
    ("POST", "/auth/otp/verify", {"phone": "9000000003", "otp": "123456"}, ["phone", "otp"]),
    (
        "POST",
        "/auth/brands/login",
        {"email": "x@example.com", "password": "whatever12"},
        ["email", "password"],
    ),
    (
        "PATCH",
        f"/influencers/{OWN}",
        {"bio": "updated"},
        ["name", "username", "email", "phone", "dateOfBirth", "gender", "bio", "profileImage"],
    ),
    ("PUT", f"/influencers/{OWN}/niches", {"nicheIds": [1, 2]}, ["nicheIds"]),
]
CASES = [(m, p, body, f) for m, p, body, fields in BODIES for f in [*fields, "unexpected"]]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def own(client):
    """An influencer to fuzz its own PATCH/PUT with: (id, auth headers)."""
    from cloutsy.models import Influencer
    from cloutsy.services import sessions

    person = Influencer.create(
        name="Own", username="own.account", email="own@example.com", phone="+919000000009"
    )
    token, _ = sessions.issue("influencer", person.id)
    return person.id, {"Authorization": f"Bearer {token}"}


def send(client, own, method, path, body):
    account_id, headers = own
    return client.request(
        path.replace(OWN, str(account_id)),
        method=method,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
        expect_errors=True,
    )


def check(response) -> None:
    assert response.status_int in (200, 201, 202, 400, 401, 409, 429), response.text
    if response.status_int >= 400:
        error = response.json["error"]
        assert error["code"] in (
            "bad_request",
            "validation_error",
            "conflict",
            "unauthorized",
            "rate_limited",
        )
        assert error["message"]
        for detail in error.get("details", []):
            assert set(detail) == {"field", "message"}


@settings(FUZZ, max_examples=400)
@given(case=st.sampled_from(CASES), value=JSON_VALUES)
def test_any_value_in_any_field_is_never_a_500(client, case, value):
    method, path, valid, field = case
    body = dict(valid, **{field: value})
    response = client.request(
        path,
        method=method,
        body=json.dumps(body).encode(),
        content_type="application/json",
        expect_errors=True,
    )
    check(response)


@settings(FUZZ, max_examples=100)
@given(case=st.sampled_from(CASES), body=JSON_VALUES)
def test_any_json_document_as_a_body_is_never_a_500(client, case, body):
    method, path, _, _ = case
    response = client.request(
        path,
        method=method,
        body=json.dumps(body).encode(),
        content_type="application/json",
        expect_errors=True,
    )
    check(response)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_are_never_a_500(client, raw):
    response = client.post("/influencers", raw, content_type="application/json", expect_errors=True)
    check(response)


@FUZZ
@given(query=st.text(max_size=80))
def test_any_query_string_on_the_lists_is_never_a_500(client, query):
    from urllib.parse import quote

    for path in ("/influencers", "/brands"):
        response = client.get(f"{path}?{quote(query, safe='=&')}", expect_errors=True)
        check(response)


# --- path segments, headers and methods (issue 12) ----------------------------------------

TEMPLATES = [
    "/niches/{}",
    "/influencers/{}",
    "/brands/{}",
    "/influencers/{}/niches",
    "/brands/{}/niches",
]
SEGMENTS = st.text(max_size=24) | st.sampled_from(
    ["²", "١٢", "0", "-1", "+1", " 1", "1\n", "a\x00b", "\x7f", "99999999999", "1e3", "Ⅻ"]
)


@settings(FUZZ, max_examples=150)
@given(
    template=st.sampled_from(TEMPLATES),
    segment=SEGMENTS,
    method=st.sampled_from(["GET", "PATCH", "PUT", "DELETE"]),
)
def test_any_path_segment_is_never_a_500(client, template, segment, method):
    from urllib.parse import quote

    path = template.format(quote(segment, safe=""))
    response = client.request(path, method=method, expect_errors=True)
    assert response.status_int in (200, 400, 401, 404, 405), response.text
    if response.status_int >= 400:
        assert response.json["error"]["code"] in (
            "bad_request",
            "unauthorized",
            "not_found",
            "method_not_allowed",
        )


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\r\n"),
    max_size=80,
)


@settings(FUZZ, max_examples=150)
@given(
    name=st.sampled_from(
        ["X-Request-Id", "Authorization", "X-Forwarded-For", "Content-Type", "If-None-Match"]
    ),
    value=HEADER_TEXT,
    path=st.sampled_from(["/influencers", "/niches/fashion", "/me", "/influencers/1"]),
)
def test_any_header_value_is_never_a_500(client, name, value, path):
    response = client.get(path, headers={name: value}, expect_errors=True)
    assert response.status_int in (200, 400, 401, 404), response.text
    rid = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", rid)


@pytest.mark.parametrize(
    "path",
    [
        "/influencers/%C2%B2",  # '²'.isdigit() is True
        "/influencers/%D9%A3",  # Arabic-Indic three
        "/brands/%EF%BC%91",  # fullwidth one
        "/niches/%C2%B2",
        "/niches/a%00b",
        "/niches/a%0Ab",
        "/influencers/1%00",
    ],
)
def test_unicode_digits_and_control_characters_in_a_path_are_404(client, path):
    assert client.get(path, status=404).json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "query",
    ["limit=%C2%B2", "limit=%D9%A3", "cursor=djE6wrI", "niche=%C2%B2", "limit=+5", "limit=%205"],
)
def test_unicode_digits_in_limit_cursor_and_niche_are_400(client, query):
    # cursor djE6wrI is base64 of "v1:²"
    r = client.get(f"/influencers?{query}", status=400)
    assert r.json["error"]["code"] == "bad_request"


def test_a_request_id_with_a_trailing_newline_is_replaced(client):
    r = client.get("/niches", headers={"X-Request-Id": "abc\n"})
    assert r.headers["X-Request-Id"] != "abc\n" and re.fullmatch(
        r"[0-9a-f]{32}", r.headers["X-Request-Id"]
    )
    assert client.get("/niches", headers={"X-Request-Id": "abc"}).headers["X-Request-Id"] == "abc"


def test_made_up_methods_share_one_metrics_label(client, wsgi_app):
    from webtest import TestApp

    raw = TestApp(wsgi_app, lint=False)  # lint warns on unknown methods; that is the point
    for method in ("BREW", "PROPFIND", "X-" + "A" * 20):
        assert raw.request("/influencers", method=method, expect_errors=True).status_int == 405
    text = client.get("/metrics").text
    assert 'method="BREW"' not in text and 'method="PROPFIND"' not in text
    assert 'method="OTHER"' in text
