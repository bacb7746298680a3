"""HTTP caching (CONTRACT §5): ETag on every 200 GET, 304 on a match, Cache-Control and Vary."""

from __future__ import annotations

import pytest

from cloutsy.api.caching import etag_of, matches
from cloutsy.services import sessions

PUBLIC, REVALIDATE, PRIVATE = "public, max-age=60", "no-cache", "private, no-store"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def person(client):
    body = {"name": "Ira", "username": "ira", "email": "ira@example.com", "phone": "9812300041"}
    person_id = client.post_json("/influencers", body, status=201).json["id"]
    return person_id, bearer(sessions.issue("influencer", person_id)[0])


@pytest.fixture
def get_routes(person, admin_headers):
    """Every GET route that answers 200, with its expected Cache-Control and Vary."""
    person_id, headers = person
    return [
        ("/niches", {}, PUBLIC, None),
        ("/niches/fashion", {}, PUBLIC, None),
        ("/influencers", {}, REVALIDATE, None),
        ("/brands", {}, REVALIDATE, None),
        (f"/influencers/{person_id}", {}, REVALIDATE, "Authorization"),
        (f"/influencers/{person_id}", headers, PRIVATE, "Authorization"),
        (f"/influencers/{person_id}", admin_headers, PRIVATE, "Authorization"),
        ("/me", headers, PRIVATE, "Authorization"),
        ("/health", {}, PRIVATE, None),
        ("/metrics", {}, PRIVATE, None),
    ]


def test_every_200_get_has_a_weak_etag_cache_control_and_vary(client, get_routes):
    for path, headers, cache_control, vary in get_routes:
        r = client.get(path, headers=headers, status=200)
        assert r.headers["ETag"].startswith('W/"'), path
        assert r.headers["Cache-Control"] == cache_control, path
        assert r.headers.get("Vary") == vary, path


def test_if_none_match_gives_304_with_no_body(client, get_routes):
    for path, headers, cache_control, _ in get_routes:
        if path in ("/health", "/metrics"):  # their bodies change on every call (latency)
            continue
        first = client.get(path, headers=headers, status=200)
        again = client.get(path, headers={**headers, "If-None-Match": first.headers["ETag"]})
        assert again.status_int == 304, path
        assert again.body == b"", path
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["Cache-Control"] == cache_control
        assert again.headers["X-Request-Id"]


def test_the_openapi_document_is_revalidated_too(wsgi_app):
    from webtest import TestApp  # the suite's client flags the document's `password` keys

    app = TestApp(wsgi_app)
    first = app.get("/openapi.json")
    assert first.headers["Cache-Control"] == REVALIDATE
    again = app.get("/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_int == 304 and again.body == b""


def test_the_etag_changes_when_the_body_does(client, person):
    person_id, headers = person
    before = client.get(f"/influencers/{person_id}")
    client.patch_json(f"/influencers/{person_id}", {"bio": "new bio"}, headers=headers)
    after = client.get(
        f"/influencers/{person_id}", headers={"If-None-Match": before.headers["ETag"]}
    )
    assert after.status_int == 200 and after.json["bio"] == "new bio"
    assert after.headers["ETag"] != before.headers["ETag"]
    # the private and the public view of one account are different bodies: different tags
    mine = client.get(f"/influencers/{person_id}", headers=headers)
    assert mine.headers["ETag"] != after.headers["ETag"]


def test_a_public_tag_does_not_revalidate_the_private_view(client, person):
    person_id, headers = person
    public = client.get(f"/influencers/{person_id}")
    mine = client.get(
        f"/influencers/{person_id}", headers={**headers, "If-None-Match": public.headers["ETag"]}
    )
    assert mine.status_int == 200 and mine.json["email"] == "ira@example.com"


def test_a_list_of_tags_a_star_and_a_strong_form_match(client):
    tag = client.get("/niches").headers["ETag"]
    for condition in (f'"nope", {tag}', "*", tag.removeprefix("W/")):
        assert client.get("/niches", headers={"If-None-Match": condition}).status_int == 304
    assert client.get("/niches", headers={"If-None-Match": '"nope"'}).status_int == 200


def test_answers_carrying_a_private_view_a_token_or_a_code_are_never_stored(client, person):
    person_id, headers = person
    body = {"name": "Noor", "username": "noor", "email": "noor@example.com", "phone": "9812300042"}
    signup = client.post_json("/influencers", body, status=201)
    sent = client.post_json("/auth/otp/send", {"phone": "9812300042"}, status=202)
    verified = client.post_json(
        "/auth/otp/verify", {"phone": "9812300042", "otp": sent.json["debugOtp"]}, status=200
    )
    edited = client.patch_json(f"/influencers/{person_id}", {"bio": "x"}, headers=headers)
    for answer in (signup, sent, verified, edited):
        assert answer.headers["Cache-Control"] == PRIVATE
    for error in (
        client.get("/influencers/999999", status=404),
        client.get("/me", status=401),
        client.post_json("/influencers", {}, status=400),
    ):
        assert error.headers["Cache-Control"] == PRIVATE
        assert "ETag" not in error.headers


def test_etag_helpers():
    tag = etag_of(b'{"a":1}')
    assert tag == etag_of(b'{"a":1}') and tag != etag_of(b'{"a":2}')
    assert matches(tag, tag) and matches(f'W/"x", {tag}', tag) and not matches('"x"', tag)
