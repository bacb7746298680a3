"""Property tests: any JSON value in any field of a request body is 2xx or a 400 in the
contract's shape (or a 409 for a taken value), never a 500.

New request schemas are covered by adding a line to BODIES.
"""

from __future__ import annotations

import json

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
    ("POST", "/auth/otp/send", {"phone": "9000000003"}, ["phone"]),
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
