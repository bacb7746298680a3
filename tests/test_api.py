"""The JSON API through the real WSGI app: endpoints, errors, pagination, query counts."""

from __future__ import annotations

import datetime as dt

import pytest

from cloutsy.list_query import encode_cursor
from cloutsy.models import Influencer, InfluencerNiche, Niche
from tests.helpers import brand_body, influencer_body

JSON = "application/json; charset=utf-8"


def niche_ids(*slugs):
    return [Niche.get(Niche.slug == s).id for s in slugs]


def assert_error(response, status, code):
    assert response.status_int == status
    assert response.content_type == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text and "SELECT" not in response.text
    assert response.headers["X-Request-Id"]
    return error


# --- niches ------------------------------------------------------------------------------


def test_niches_list_active_niches_with_counts(client):
    fashion, food = niche_ids("fashion", "food")
    client.post_json("/influencers", influencer_body(1, nicheIds=[fashion, food]))
    client.post_json("/influencers", influencer_body(2, nicheIds=[fashion]))
    client.post_json("/brands", brand_body(1, nicheIds=[food]))
    Niche.update(is_active=False).where(Niche.slug == "pets").execute()

    r = client.get("/niches")
    assert r.headers["Content-Type"] == JSON
    items = {n["slug"]: n for n in r.json["items"]}
    assert "pets" not in items
    assert items["fashion"]["influencerCount"] == 2 and items["fashion"]["brandCount"] == 0
    assert items["food"]["influencerCount"] == 1 and items["food"]["brandCount"] == 1
    assert set(items["fashion"]) == {
        "id",
        "name",
        "slug",
        "icon",
        "description",
        "influencerCount",
        "brandCount",
    }
    assert items["fashion"]["icon"] == "👗"


def test_niche_counts_come_from_one_query(client, queries):
    with queries as q:
        client.get("/niches")
    assert q.count == 1


def test_one_niche_by_id_or_slug(client):
    fashion = niche_ids("fashion")[0]
    assert client.get(f"/niches/{fashion}").json["slug"] == "fashion"
    assert client.get("/niches/fashion").json["id"] == fashion
    assert_error(client.get("/niches/no-such-niche", status=404), 404, "not_found")
    assert_error(client.get("/niches/99999999999999999999", status=404), 404, "not_found")


def test_seed_niches_needs_the_admin_token(client, admin_headers):
    assert_error(client.post("/seed/niches", status=401), 401, "unauthorized")
    bad = {"Authorization": "Bearer wrong"}
    assert_error(client.post("/seed/niches", headers=bad, status=401), 401, "unauthorized")
    r = client.post("/seed/niches", headers=admin_headers)
    assert r.json["created"] == 0 and r.json["updated"] == 0 and r.json["total"] >= 20


def test_seed_niches_is_forbidden_when_admin_is_disabled(pool, app_settings):
    from webtest import TestApp

    from cloutsy.api import create_app

    app = TestApp(create_app(app_settings.with_overrides(admin_token=None)))
    with pool.connected():
        r = app.post("/seed/niches", headers={"Authorization": "Bearer anything"}, status=403)
    assert_error(r, 403, "forbidden")


# --- sign-up -----------------------------------------------------------------------------


def test_influencer_sign_up_returns_the_private_view_and_location(client):
    food, travel = niche_ids("food", "travel")
    body = influencer_body(
        1,
        username="Jane.Doe",
        email="Jane@Example.COM",
        dateOfBirth="1995-04-01",
        gender="female",
        bio="Street food",
        profileImage="https://img.example/jane.png",
        nicheIds=[travel, food],
    )
    r = client.post_json("/influencers", body, status=201)
    data = r.json
    assert r.headers["Location"] == f"/influencers/{data['id']}"
    assert data["username"] == "jane.doe" and data["email"] == "jane@example.com"
    assert data["phone"] == "+919876500001"
    assert data["dateOfBirth"] == "1995-04-01"
    assert data["isPhoneVerified"] is False and data["isActive"] is True
    assert [n["slug"] for n in data["niches"]] == sorted(
        ["food", "travel"], key=lambda s: niche_ids(s)[0]
    )
    created = dt.datetime.fromisoformat(data["createdAt"])
    assert created.utcoffset() is not None
    assert "password" not in r.text


def test_brand_sign_up_hashes_the_password(client):
    r = client.post_json("/brands", brand_body(1, companyType="llp"), status=201)
    data = r.json
    assert data["companyType"] == "llp" and data["isProfileCompleted"] is False
    assert "password" not in data and "correct horse" not in r.text
    from cloutsy.models import Brand

    stored = Brand.get_by_id(data["id"]).password
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_brand_with_every_profile_field_is_completed(client):
    url = "https://docs.example/f.pdf"
    full = brand_body(
        1,
        legalEntityName="Brand One Pvt Ltd",
        companyType="private_limited",
        brandEmailId="hello@brand.example",
        pocName="Asha",
        pocDesignation="CMO",
        pocEmailId="asha@brand.example",
        pocContactNumber="9876512345",
        brandBio="We sell tea",
        profileImage=url,
        incorporationDocument=url,
        gstDocument=url,
        panDocument=url,
    )
    data = client.post_json("/brands", full, status=201).json
    assert data["isProfileCompleted"] is True
    assert data["pocContactNumber"] == "+919876512345"


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"username": "ab"}, {"username"}),
        ({"username": "no spaces"}, {"username"}),
        ({"email": "not-an-email"}, {"email"}),
        ({"phone": "12345"}, {"phone"}),
        ({"dateOfBirth": "2020-01-01"}, {"dateOfBirth"}),
        ({"dateOfBirth": "2999-01-01"}, {"dateOfBirth"}),
        ({"gender": "robot"}, {"gender"}),
        ({"bio": "x" * 1001}, {"bio"}),
        ({"profileImage": "ftp://x.example/a.png"}, {"profileImage"}),
        ({"nicheIds": [1, 1]}, {"nicheIds"}),
        ({"nicheIds": list(range(1, 12))}, {"nicheIds"}),
        ({"nicheIds": ["1"]}, {"nicheIds"}),
        ({"isPhoneVerified": True}, {"isPhoneVerified"}),
        ({"name": "", "email": "x", "phone": "1"}, {"name", "email", "phone"}),
        ({"name": 5}, {"name"}),
        ({"bio": "nul\x00byte"}, {"bio"}),
    ],
)
def test_influencer_validation_names_every_bad_field(client, change, fields):
    r = client.post_json("/influencers", influencer_body(1, **change), status=400)
    error = assert_error(r, 400, "validation_error")
    assert {d["field"] for d in error["details"]} == fields
    assert Influencer.select().count() == 0


def test_missing_fields_are_all_named(client):
    error = assert_error(client.post_json("/influencers", {}, status=400), 400, "validation_error")
    assert {d["field"] for d in error["details"]} == {"name", "username", "email", "phone"}


def test_brand_password_must_be_long_enough(client):
    r = client.post_json("/brands", brand_body(1, password="short"), status=400)
    assert assert_error(r, 400, "validation_error")["details"][0]["field"] == "password"


def test_unknown_or_inactive_niche_leaves_nothing_behind(client):
    Niche.update(is_active=False).where(Niche.slug == "pets").execute()
    for ids in ([999_999], niche_ids("food", "pets")):
        r = client.post_json("/influencers", influencer_body(1, nicheIds=ids), status=400)
        assert assert_error(r, 400, "validation_error")["details"][0]["field"] == "nicheIds"
    assert Influencer.select().count() == 0
    assert InfluencerNiche.select().count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "CREATOR1"}, "username"),
        ({"email": "CREATOR1@example.com"}, "email"),
        ({"phone": "+91 98765 00001"}, "phone"),
    ],
)
def test_taken_values_are_409_naming_the_field(client, change, field):
    first = client.post_json("/influencers", influencer_body(1), status=201).json["id"]
    # A phone is taken once proved (CONTRACT §6; an unproved claim is released instead).
    Influencer.update(is_phone_verified=True).where(Influencer.id == first).execute()
    r = client.post_json("/influencers", influencer_body(2, **change), status=409)
    assert assert_error(r, 409, "conflict")["details"][0]["field"] == field


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"name": "x"', "application/json"),
        (b'{"name": "x"}', "text/plain"),
        (b'{"name": "x"}', "application/x-www-form-urlencoded"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_bodies_are_400_bad_request(client, body, content_type):
    r = client.post("/influencers", body, content_type=content_type, status=400)
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"text"', b"null", b"42"])
def test_json_that_is_not_an_object_is_a_validation_error(client, body):
    r = client.post("/influencers", body, content_type="application/json", status=400)
    error = assert_error(r, 400, "validation_error")
    assert error["details"][0]["field"] == "body"


def test_bodies_over_64_kib_are_413_without_being_read(client):
    big = b'{"bio": "' + b"x" * (64 * 1024) + b'"}'
    r = client.post("/influencers", big, content_type="application/json", status=413)
    assert_error(r, 413, "payload_too_large")
    assert r.headers["Connection"] == "close"


def test_deeply_nested_and_huge_values_never_500(client):
    for value in ({"a": {"b": {"c": [1] * 100}}}, 10**40, -1, 1.5, [None], True):
        r = client.post_json("/influencers", influencer_body(1, nicheIds=value), status=400)
        assert r.json["error"]["code"] == "validation_error"


# --- browsing ----------------------------------------------------------------------------


@pytest.fixture
def crowd(client):
    """25 influencers: even ones in food, odd ones in travel, every 3rd verified, #5 inactive."""
    food, travel = niche_ids("food", "travel")
    ids = []
    for n in range(1, 26):
        body = influencer_body(
            n,
            nicheIds=[food if n % 2 == 0 else travel],
            bio="loves street food" if n % 5 == 0 else "travel diaries",
        )
        ids.append(client.post_json("/influencers", body).json["id"])
    Influencer.update(is_phone_verified=True).where(Influencer.id.in_(ids[::3])).execute()
    Influencer.update(is_active=False).where(Influencer.id == ids[4]).execute()
    return ids


def test_list_is_newest_first_public_and_paginated(client, crowd):
    r = client.get("/influencers?limit=10")
    page = r.json
    assert [i["id"] for i in page["items"]] == sorted(crowd, reverse=True)[:10]
    assert page["nextCursor"]
    first = page["items"][0]
    assert "email" not in first and "phone" not in first and "dateOfBirth" not in first
    assert first["niches"] and set(first["niches"][0]) == {"id", "name", "slug", "icon"}


def test_walking_every_page_returns_each_active_row_once(client, crowd):
    seen, cursor = [], None
    while True:
        url = "/influencers?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).json
        seen.extend(i["id"] for i in page["items"])
        # A sign-up between pages never shows up twice nor shifts the pages.
        if len(seen) == 7:
            client.post_json("/influencers", influencer_body(99))
        cursor = page["nextCursor"]
        if not cursor:
            break
    expected = [i for i in sorted(crowd, reverse=True) if i != crowd[4]]
    assert seen == expected


def test_filters_niche_any_of_verified_and_text(client, crowd):
    def ids(url):
        return {i["id"] for i in client.get(url).json["items"]}

    active = set(crowd) - {crowd[4]}
    food_ids = {crowd[n - 1] for n in range(2, 26, 2)} & active
    assert ids("/influencers?niche=food&limit=100") == food_ids
    food_id = niche_ids("food")[0]
    assert ids(f"/influencers?niche={food_id}&limit=100") == food_ids
    assert ids("/influencers?niche=food&niche=travel&limit=100") == active
    assert ids("/influencers?verified=true&limit=100") == set(crowd[::3]) & active
    assert ids("/influencers?verified=false&limit=100") == active - set(crowd[::3])
    street = {crowd[n - 1] for n in range(5, 26, 5)} & active
    assert ids("/influencers?q=street&limit=100") == street
    assert ids("/influencers?q=STREET%20fo&limit=100") == street
    assert ids("/influencers?q=creator1&limit=100") >= {crowd[0], crowd[9]}
    assert ids("/influencers?q=%25%25%25&limit=100") == set()
    assert ids("/influencers?niche=gaming") == set()


def test_list_uses_one_query_whatever_the_page_size(client, crowd, queries):
    # The first use on a connection also PREPAREs the statement: warm up, then count.
    client.get("/influencers?limit=1&niche=food&niche=travel")
    client.get("/brands?limit=1")
    counts = []
    for limit in (1, 5, 25):
        with queries as q:
            client.get(f"/influencers?limit={limit}&niche=food&niche=travel")
        counts.append(q.count)
    with queries as q:
        client.get("/brands?limit=100")
    counts.append(q.count)
    assert counts == [1, 1, 1, 1]


def test_a_statement_is_prepared_once_per_connection(client, crowd, queries):
    with queries as q:
        client.get("/influencers?limit=3&verified=true")
    first = q.count
    with queries as q:
        client.get("/influencers?limit=3&verified=true")
    assert (first, q.count) in ((2, 1), (1, 1))


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=99999999999999",
        "verified=yes",
        "cursor=not-a-cursor",
        "cursor=' OR 1=1 --",
        "niche=Fashion!!",
        "niche=" + "1" * 30,
        "unknown=1",
        "limit=5&limit=6",
        "q=" + "x" * 201,
        "q=%00",
        "cursor=" + encode_cursor(1).replace("djE", "djI"),
    ],
)
def test_bad_query_values_are_400_bad_request(client, query):
    assert_error(client.get(f"/influencers?{query}", status=400), 400, "bad_request")


def test_sql_in_q_is_only_text(client, crowd):
    r = client.get("/influencers?q=%27%3B%20DROP%20TABLE%20influencers%3B%20--")
    assert r.json["items"] == []
    assert Influencer.select().count() == 25


def test_detail_is_public_with_niches_and_404_for_unknown(client, crowd):
    data = client.get(f"/influencers/{crowd[1]}").json
    assert data["id"] == crowd[1] and data["niches"][0]["slug"] == "food"
    assert "email" not in data and "phone" not in data
    for bad in ("999999", "abc", "-1", "0", "99999999999999999999", "1.5"):
        assert_error(client.get(f"/influencers/{bad}", status=404), 404, "not_found")
    assert_error(client.get(f"/influencers/{crowd[4]}", status=404), 404, "not_found")


def test_detail_uses_one_query(client, crowd, queries):
    client.get(f"/influencers/{crowd[1]}")  # prepares the statement on this connection
    with queries as q:
        client.get(f"/influencers/{crowd[0]}")
    assert q.count == 1


def test_brands_browse_and_detail(client):
    food = niche_ids("food")[0]
    made = [
        client.post_json("/brands", brand_body(n, nicheIds=[food])).json["id"] for n in range(1, 4)
    ]
    page = client.get("/brands?niche=food&limit=2").json
    assert [b["id"] for b in page["items"]] == sorted(made, reverse=True)[:2]
    assert page["nextCursor"]
    rest = client.get(f"/brands?niche=food&cursor={page['nextCursor']}").json
    assert [b["id"] for b in rest["items"]] == [min(made)] and rest["nextCursor"] is None
    one = client.get(f"/brands/{made[0]}").json
    assert one["brandName"] == "Brand 1" and "email" not in one and "password" not in one
    assert "pocContactNumber" not in one and "gstDocument" not in one


# --- errors and operations ---------------------------------------------------------------


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope", status=404), 404, "not_found")
    r = client.delete("/niches", status=405)
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_every_response_has_a_request_id_and_an_incoming_one_is_kept(client):
    r = client.get("/niches", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = client.get("/niches", headers={"X-Request-Id": "bad id with spaces"})
    rid = r.headers["X-Request-Id"]
    assert rid != "bad id with spaces" and len(rid) == 32


def test_an_unexpected_error_is_500_with_a_request_id_and_no_trace(client, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals: SELECT password FROM brands")

    monkeypatch.setattr("cloutsy.queries.niches_json", boom)
    r = client.get("/niches", status=500)
    error = assert_error(r, 500, "internal_error")
    assert error["requestId"] == r.headers["X-Request-Id"]
    assert "secret internals" not in r.text
    assert error["requestId"] in caplog.text


def test_health_reports_database_pool_and_migrations(client):
    data = client.get("/health").json
    assert data["status"] == "ok"
    db = data["database"]
    assert db["ok"] is True and db["latencyMs"] >= 0 and db["pendingMigrations"] == 0
    assert db["pool"]["max"] == 5 and db["pool"]["inUse"] >= 1


def test_metrics_expose_requests_latency_pool_queries_and_errors(client):
    client.get("/niches")
    client.get("/nope", status=404)
    text = client.get("/metrics").text
    assert 'cloutsy_http_requests_total{method="GET",route="/niches",status="200"}' in text
    bucket = 'cloutsy_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/niches"}'
    assert bucket in text
    assert "cloutsy_db_pool_max 5.0" in text
    assert "cloutsy_db_pool_in_use" in text and "cloutsy_db_pool_idle" in text
    assert "cloutsy_db_queries_total" in text and "cloutsy_db_query_duration_seconds" in text
    assert 'cloutsy_http_errors_total{code="not_found"' in text


def test_counting_queries_leaves_the_metrics_counting(client, queries):
    """One query counter: a `QueryCounter` block chains in front of /metrics' observer."""
    from prometheus_client import REGISTRY

    client.get("/niches")  # the app is built: its observer is installed on the pool
    before = REGISTRY.get_sample_value("cloutsy_db_queries_total")
    with queries as q:
        client.get("/influencers?limit=2")
    assert q.count >= 1 and q.statements[-1][0].strip()
    assert REGISTRY.get_sample_value("cloutsy_db_queries_total") - before == q.count
