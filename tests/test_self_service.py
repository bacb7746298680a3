"""An account's own edits: partial updates, niche sets, deactivation, logout and /me."""

from __future__ import annotations

import pytest

from cloutsy.models import Brand, BrandNiche, Influencer, InfluencerNiche, Niche, Session
from cloutsy.services import sessions
from tests.conftest import ADMIN_TOKEN

URL = "https://docs.example/file.pdf"


def niche_ids(*slugs: str) -> list[int]:
    return [Niche.get(Niche.slug == s).id for s in slugs]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def person(client) -> tuple[int, dict[str, str]]:
    """An influencer in food and travel, and its token."""
    body = {
        "name": "Asha",
        "username": "asha",
        "email": "asha@example.com",
        "phone": "9812300001",
        "bio": "street food",
        "nicheIds": niche_ids("food", "travel"),
    }
    person_id = client.post_json("/influencers", body, status=201).json["id"]
    return person_id, bearer(sessions.issue("influencer", person_id)[0])


@pytest.fixture
def shop(client) -> tuple[int, dict[str, str]]:
    """A brand with an incomplete profile, and its token."""
    body = {
        "email": "shop@example.com",
        "password": "correct horse battery",
        "phone": "8812300001",
        "brandName": "Shop",
        "username": "shop",
    }
    brand_id = client.post_json("/brands", body, status=201).json["id"]
    return brand_id, bearer(sessions.issue("brand", brand_id)[0])


# --- PATCH -----------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent_and_returns_the_private_view(client, person):
    person_id, auth = person
    r = client.patch_json(
        f"/influencers/{person_id}",
        {"name": "Asha R", "bio": None, "gender": "female"},
        headers=auth,
    )
    data = r.json
    assert data["name"] == "Asha R" and data["bio"] is None and data["gender"] == "female"
    assert data["username"] == "asha" and data["email"] == "asha@example.com"
    assert {n["slug"] for n in data["niches"]} == {"food", "travel"}
    row = Influencer.get_by_id(person_id)
    assert row.name == "Asha R" and row.bio is None


def test_an_empty_patch_changes_nothing(client, person):
    person_id, auth = person
    before = client.get(f"/influencers/{person_id}", headers=auth).json
    assert client.patch_json(f"/influencers/{person_id}", {}, headers=auth).json == before


def test_patch_normalises_like_sign_up(client, person):
    person_id, auth = person
    data = client.patch_json(
        f"/influencers/{person_id}",
        {"username": "Asha.Cooks", "email": "ASHA@Example.com"},
        headers=auth,
    ).json
    assert data["username"] == "asha.cooks" and data["email"] == "asha@example.com"


@pytest.mark.parametrize(
    "field",
    ["isPhoneVerified", "isActive", "id", "createdAt", "updatedAt", "niches", "password"],
)
def test_server_owned_fields_cannot_be_set(client, person, field):
    person_id, auth = person
    r = client.patch_json(f"/influencers/{person_id}", {field: True}, headers=auth, status=400)
    assert r.json["error"]["code"] == "validation_error"
    assert r.json["error"]["details"] == [{"field": field, "message": "unknown field"}]


@pytest.mark.parametrize("field", ["name", "username", "email", "phone"])
def test_required_fields_cannot_be_cleared(client, person, field):
    person_id, auth = person
    r = client.patch_json(f"/influencers/{person_id}", {field: None}, headers=auth, status=400)
    assert [d["field"] for d in r.json["error"]["details"]] == [field]


def test_patch_validation_names_every_bad_field(client, person):
    person_id, auth = person
    body = {"username": "x", "email": "nope", "dateOfBirth": "2999-01-01", "bio": "b" * 1001}
    r = client.patch_json(f"/influencers/{person_id}", body, headers=auth, status=400)
    fields = {d["field"] for d in r.json["error"]["details"]}
    assert fields == {"username", "email", "dateOfBirth", "bio"}


def test_a_new_phone_is_pending_and_the_proved_one_stays_until_then(client, person):
    """CONTRACT §6: a PATCHed phone takes effect only once a code sent to it is verified
    (tests/test_attacks.py verifies it); the same phone again cancels the change."""
    person_id, auth = person
    Influencer.update(is_phone_verified=True).where(Influencer.id == person_id).execute()
    same = client.patch_json(
        f"/influencers/{person_id}", {"phone": "+91 98123 00001"}, headers=auth
    )
    assert same.json["isPhoneVerified"] is True and same.json["pendingPhone"] is None
    moved = client.patch_json(f"/influencers/{person_id}", {"phone": "9812300009"}, headers=auth)
    assert moved.json["isPhoneVerified"] is True and moved.json["phone"] == "+919812300001"
    assert moved.json["pendingPhone"] == "+919812300009"
    back = client.patch_json(f"/influencers/{person_id}", {"phone": "9812300001"}, headers=auth)
    assert back.json["pendingPhone"] is None and back.json["phone"] == "+919812300001"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "TAKEN"}, "username"),
        ({"email": "taken@example.com"}, "email"),
        ({"phone": "9812300002"}, "phone"),
    ],
)
def test_a_taken_value_is_409_naming_the_field(client, person, change, field):
    other = {"name": "T", "username": "taken", "email": "taken@example.com", "phone": "9812300002"}
    other_id = client.post_json("/influencers", other, status=201).json["id"]
    # Only a proved phone is taken (CONTRACT §6): the other account has proved its own.
    Influencer.update(is_phone_verified=True).where(Influencer.id == other_id).execute()
    person_id, auth = person
    r = client.patch_json(f"/influencers/{person_id}", change, headers=auth, status=409)
    assert r.json["error"]["code"] == "conflict"
    assert r.json["error"]["details"][0]["field"] == field
    assert Influencer.get_by_id(person_id).username == "asha"


def test_brand_profile_completion_is_recomputed_on_every_change(client, shop):
    brand_id, auth = shop
    profile = {
        "legalEntityName": "Shop Pvt Ltd",
        "companyType": "private_limited",
        "brandEmailId": "hello@shop.example",
        "pocName": "Ravi",
        "pocDesignation": "CMO",
        "pocEmailId": "ravi@shop.example",
        "pocContactNumber": "9812399999",
        "brandBio": "We sell tea",
        "profileImage": URL,
        "incorporationDocument": URL,
        "gstDocument": URL,
    }
    data = client.patch_json(f"/brands/{brand_id}", profile, headers=auth).json
    assert data["isProfileCompleted"] is False  # the PAN document is still missing
    data = client.patch_json(f"/brands/{brand_id}", {"panDocument": URL}, headers=auth).json
    assert data["isProfileCompleted"] is True and data["pocContactNumber"] == "+919812399999"
    data = client.patch_json(f"/brands/{brand_id}", {"brandName": "Shop 2"}, headers=auth).json
    assert data["isProfileCompleted"] is True
    data = client.patch_json(f"/brands/{brand_id}", {"gstDocument": None}, headers=auth).json
    assert data["isProfileCompleted"] is False
    assert Brand.get_by_id(brand_id).is_profile_completed is False


@pytest.mark.parametrize("field", ["isProfileCompleted", "password", "isPhoneVerified"])
def test_brand_server_owned_fields_cannot_be_set(client, shop, field):
    brand_id, auth = shop
    r = client.patch_json(f"/brands/{brand_id}", {field: "x"}, headers=auth, status=400)
    assert r.json["error"]["details"][0]["field"] == field


def test_brand_phone_change_is_pending_too(client, shop):
    brand_id, auth = shop
    Brand.update(is_phone_verified=True).where(Brand.id == brand_id).execute()
    data = client.patch_json(f"/brands/{brand_id}", {"phone": "8812300009"}, headers=auth).json
    assert data["isPhoneVerified"] is True and data["pendingPhone"] == "+918812300009"
    assert Brand.get_by_id(brand_id).phone == "+918812300001"


# --- PUT …/niches ----------------------------------------------------------------------------


def test_put_niches_replaces_the_set_and_keeps_surviving_links(client, person):
    person_id, auth = person
    food, travel, music = niche_ids("food", "travel", "music")
    kept = InfluencerNiche.get(
        InfluencerNiche.influencer == person_id, InfluencerNiche.niche == food
    )
    r = client.put_json(
        f"/influencers/{person_id}/niches", {"nicheIds": [music, food]}, headers=auth
    )
    assert [n["id"] for n in r.json["items"]] == sorted([music, food])
    assert set(r.json["items"][0]) == {"id", "name", "slug", "icon"}
    links = InfluencerNiche.select().where(InfluencerNiche.influencer == person_id)
    assert {link.niche_id for link in links} == {food, music}
    assert InfluencerNiche.get_by_id(kept.id).created_at == kept.created_at
    view = client.get(f"/influencers/{person_id}").json
    assert [n["id"] for n in view["niches"]] == sorted([music, food])
    assert travel not in [n["id"] for n in view["niches"]]


def test_an_empty_list_clears_the_set(client, person):
    person_id, auth = person
    r = client.put_json(f"/influencers/{person_id}/niches", {"nicheIds": []}, headers=auth)
    assert r.json == {"items": []}
    assert InfluencerNiche.select().where(InfluencerNiche.influencer == person_id).count() == 0


@pytest.mark.parametrize(
    "bad",
    [[999_999], "inactive", [1, 1], list(range(1, 12)), ["1"], None],
)
def test_a_bad_niche_list_leaves_the_old_set(client, person, bad):
    person_id, auth = person
    if bad == "inactive":
        Niche.update(is_active=False).where(Niche.slug == "pets").execute()
        bad = niche_ids("music", "pets")
    before = {n["id"] for n in client.get(f"/influencers/{person_id}").json["niches"]}
    url = f"/influencers/{person_id}/niches"
    r = client.put_json(url, {"nicheIds": bad}, headers=auth, status=400)
    assert r.json["error"]["code"] == "validation_error"
    assert r.json["error"]["details"][0]["field"] == "nicheIds"
    after = {n["id"] for n in client.get(f"/influencers/{person_id}").json["niches"]}
    assert after == before == set(niche_ids("food", "travel"))


def test_brand_niches_are_replaced_the_same_way(client, shop):
    brand_id, auth = shop
    fashion, beauty = niche_ids("fashion", "beauty")
    r = client.put_json(f"/brands/{brand_id}/niches", {"nicheIds": [beauty, fashion]}, headers=auth)
    assert {n["slug"] for n in r.json["items"]} == {"fashion", "beauty"}
    assert BrandNiche.select().where(BrandNiche.brand == brand_id).count() == 2


def test_replacing_niches_takes_the_same_number_of_queries_for_any_size(client, person, queries):
    person_id, auth = person
    counts = []
    for slugs in (["food"], ["food", "travel", "music", "fashion", "beauty", "gaming"]):
        body = {"nicheIds": niche_ids(*slugs)}
        with queries as q:
            client.put_json(f"/influencers/{person_id}/niches", body, headers=auth)
        counts.append(q.count)
    assert counts[0] == counts[1]


# --- DELETE, logout, /me ---------------------------------------------------------------------


def test_delete_deactivates_and_ends_every_session(client, person):
    person_id, auth = person
    second = bearer(sessions.issue("influencer", person_id)[0])
    client.delete(f"/influencers/{person_id}", headers=auth, status=204)
    assert Influencer.get_by_id(person_id).is_active is False
    client.get(f"/influencers/{person_id}", status=404)
    assert person_id not in [i["id"] for i in client.get("/influencers").json["items"]]
    for headers in (auth, second):
        client.get("/me", headers=headers, status=401)
    live = Session.select().where((Session.subject_id == person_id) & Session.revoked_at.is_null())
    assert live.count() == 0


def test_the_admin_deactivates_any_account_and_learns_404_for_unknown_ones(client, shop):
    brand_id, auth = shop
    admin = bearer(ADMIN_TOKEN)
    r = client.delete(f"/brands/{brand_id}", headers=admin, status=204)
    assert r.body == b""
    client.get("/me", headers=auth, status=401)
    client.delete(f"/brands/{brand_id}", headers=admin, status=404)  # already inactive
    client.delete("/brands/abc", headers=admin, status=404)
    login = {"email": "shop@example.com", "password": "correct horse battery"}
    client.post_json("/auth/brands/login", login, status=401)


def test_logout_ends_only_this_session(client, person):
    person_id, auth = person
    other = bearer(sessions.issue("influencer", person_id)[0])
    r = client.post("/auth/logout", headers=auth, status=204)
    assert r.body == b"" and "Content-Type" not in r.headers
    client.get("/me", headers=auth, status=401)
    client.post("/auth/logout", headers=auth, status=401)
    assert client.get("/me", headers=other).json["id"] == person_id


def test_me_is_the_private_view_of_the_caller(client, person, shop):
    person_id, auth = person
    me = client.get("/me", headers=auth).json
    assert me["id"] == person_id and me["phone"] == "+919812300001" and "dateOfBirth" in me
    brand_id, brand_auth = shop
    me = client.get("/me", headers=brand_auth).json
    assert me["id"] == brand_id and me["brandName"] == "Shop" and "gstDocument" in me


def test_the_admin_token_is_not_an_account(client):
    r = client.get("/me", headers=bearer(ADMIN_TOKEN), status=403)
    assert "not an account" in r.json["error"]["message"]
    client.post("/auth/logout", headers=bearer(ADMIN_TOKEN), status=403)


def test_the_owner_and_the_admin_see_the_private_view(client, person):
    person_id, auth = person
    assert "email" not in client.get(f"/influencers/{person_id}").json
    assert "email" in client.get(f"/influencers/{person_id}", headers=auth).json
    assert "email" in client.get(f"/influencers/{person_id}", headers=bearer(ADMIN_TOKEN)).json
