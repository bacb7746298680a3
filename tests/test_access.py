"""The access matrix: every protected endpoint x every kind of caller, with its status.

Callers: no token, a garbage token, the target account's own expired and revoked
tokens, another influencer, another brand, the account itself, the admin token.
Authorisation comes before existence: only the admin learns that an id does not exist.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass

import pytest

from cloutsy import passwords
from cloutsy.models import Brand, Influencer, Niche, Session, utcnow
from cloutsy.services import sessions
from tests.conftest import ADMIN_TOKEN

CALLERS = ("none", "garbage", "expired", "revoked", "other_influencer", "brand", "self", "admin")
CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
UNKNOWN_ID = 2_000_000_000


@functools.cache
def brand_password_hash() -> str:
    return passwords.hash_password("a-long-enough-password")


@dataclass
class World:
    influencer: int
    brand: int
    other_influencer: int
    other_brand: int
    niche: int
    headers: dict[tuple[str, str], dict[str, str]]  # (target kind, caller) -> headers


def make_influencer(n: int) -> int:
    return Influencer.create(
        name=f"Person {n}",
        username=f"person{n}",
        email=f"p{n}@example.com",
        phone=f"+9198700{n:05d}",
    ).id


def make_brand(n: int) -> int:
    return Brand.create(
        email=f"b{n}@example.com",
        password=brand_password_hash(),
        phone=f"+9188700{n:05d}",
        brand_name=f"Brand {n}",
        username=f"brand{n}",
    ).id


def raw_session(kind: str, account_id: int, expires_at: dt.datetime) -> str:
    token = secrets.token_urlsafe(32)
    Session.create(
        token_hash=sessions.token_hash(token),
        subject_type=kind,
        subject_id=account_id,
        expires_at=expires_at,
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(client) -> World:
    ids = {
        "influencer": make_influencer(1),
        "brand": make_brand(1),
        "other_influencer": make_influencer(2),
        "other_brand": make_brand(2),
    }
    shared = {
        "none": {},
        "garbage": bearer(secrets.token_urlsafe(32)),
        "other_influencer": bearer(sessions.issue("influencer", ids["other_influencer"])[0]),
        "brand": bearer(sessions.issue("brand", ids["other_brand"])[0]),
        "admin": bearer(ADMIN_TOKEN),
    }
    headers = {}
    for kind in ("influencer", "brand"):
        target = ids[kind]
        revoked, _ = sessions.issue(kind, target)
        sessions.revoke(sessions.token_hash(revoked))
        own = {
            "expired": bearer(raw_session(kind, target, utcnow() - dt.timedelta(seconds=1))),
            "revoked": bearer(revoked),
            "self": bearer(sessions.issue(kind, target)[0]),
        }
        for caller, value in {**shared, **own}.items():
            headers[(kind, caller)] = value
    niche = Niche.get(Niche.slug == "food").id
    return World(headers=headers, niche=niche, **ids)


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: str  # {influencer} / {brand} are filled with the target's id
    target: str  # whose own tokens "self", "expired" and "revoked" are
    expected: tuple[int, ...]  # one status per CALLERS entry
    body: str | None = None


DENIED = (401, 401, 401, 401)
ROWS = (
    Row("me", "GET", "/me", "influencer", (*DENIED, 200, 200, 200, 403)),
    Row("logout", "POST", "/auth/logout", "influencer", (*DENIED, 204, 204, 204, 403)),
    Row("patch-influencer", "PATCH", "/influencers/{influencer}", "influencer",
        (*DENIED, 403, 403, 200, 403), '{"bio": "changed"}'),
    Row("niches-influencer", "PUT", "/influencers/{influencer}/niches", "influencer",
        (*DENIED, 403, 403, 200, 403), '{"nicheIds": [{niche}]}'),
    Row("delete-influencer", "DELETE", "/influencers/{influencer}", "influencer",
        (*DENIED, 403, 403, 204, 204)),
    Row("patch-brand", "PATCH", "/brands/{brand}", "brand",
        (*DENIED, 403, 403, 200, 403), '{"brandBio": "changed"}'),
    Row("niches-brand", "PUT", "/brands/{brand}/niches", "brand",
        (*DENIED, 403, 403, 200, 403), '{"nicheIds": [{niche}]}'),
    Row("delete-brand", "DELETE", "/brands/{brand}", "brand", (*DENIED, 403, 403, 204, 204)),
    Row("seed-niches", "POST", "/seed/niches", "influencer", (*DENIED, 403, 403, 403, 200)),
    Row("detail-influencer", "GET", "/influencers/{influencer}", "influencer",
        (200, 401, 401, 401, 200, 200, 200, 200)),
    Row("detail-brand", "GET", "/brands/{brand}", "brand",
        (200, 401, 401, 401, 200, 200, 200, 200)),
    # An id that does not exist: 403 for any account (no probing), 404 only for the admin.
    Row("patch-unknown-influencer", "PATCH", f"/influencers/{UNKNOWN_ID}", "influencer",
        (*DENIED, 403, 403, 403, 403), '{"bio": "changed"}'),
    Row("niches-unknown-brand", "PUT", f"/brands/{UNKNOWN_ID}/niches", "brand",
        (*DENIED, 403, 403, 403, 403), '{"nicheIds": []}'),
    Row("delete-unknown-influencer", "DELETE", f"/influencers/{UNKNOWN_ID}", "influencer",
        (*DENIED, 403, 403, 403, 404)),
    Row("delete-unknown-brand", "DELETE", f"/brands/{UNKNOWN_ID}", "brand",
        (*DENIED, 403, 403, 403, 404)),
)  # fmt: skip
CELLS = [
    pytest.param(row, caller, status, id=f"{row.name}-{caller}")
    for row in ROWS
    for caller, status in zip(CALLERS, row.expected, strict=True)
]


@pytest.mark.parametrize(("row", "caller", "status"), CELLS)
def test_access_matrix(client, world, row, caller, status):
    path = row.path.format(influencer=world.influencer, brand=world.brand)
    headers = dict(world.headers[(row.target, caller)])
    body = None
    if row.body is not None:
        body = row.body.replace("{niche}", str(world.niche)).encode()
        headers["Content-Type"] = "application/json"
    r = client.request(path, method=row.method, headers=headers, body=body, expect_errors=True)
    assert r.status_int == status, r.text
    if status >= 400:
        assert r.json["error"]["code"] == CODES[status]
    if row.method == "GET" and status == 200 and row.path != "/me":
        # The detail routes: the private view only for the account itself and the admin.
        assert ("email" in r.json) == (caller in ("self", "admin")), r.json


def test_a_brand_cannot_act_on_the_influencer_with_its_own_id(client):
    """Ids of the two kinds overlap; a token is for (kind, id), never for an id alone."""
    same = UNKNOWN_ID - 1
    Influencer.insert(
        id=same, name="Same", username="same.id", email="s@example.com", phone="+919870099999"
    ).execute()
    Brand.insert(
        id=same,
        email="s@example.com",
        password=brand_password_hash(),
        phone="+918870099999",
        brand_name="Same",
        username="same.id",
    ).execute()
    token, _ = sessions.issue("brand", UNKNOWN_ID - 1)
    path = f"/influencers/{UNKNOWN_ID - 1}"
    r = client.patch_json(path, {"bio": "hijack"}, headers=bearer(token), status=403)
    assert r.json["error"]["code"] == "forbidden"
    client.delete(path, headers=bearer(token), status=403)
    assert "email" not in client.get(path, headers=bearer(token)).json
    assert Influencer.get_by_id(UNKNOWN_ID - 1).bio is None


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer " + "x" * 600, "Bearer a b"],
)
def test_malformed_authorization_headers_are_401(client, world, header):
    r = client.get("/me", headers={"Authorization": header}, status=401)
    assert r.json["error"]["code"] == "unauthorized"


def test_a_deactivated_accounts_tokens_die_with_it(client, world):
    own = world.headers[("influencer", "self")]
    client.delete(f"/influencers/{world.influencer}", headers=own, status=204)
    client.get("/me", headers=own, status=401)
    # Switched off by hand, without revoking: its sessions still stop working.
    Brand.update(is_active=False).where(Brand.id == world.brand).execute()
    client.get("/me", headers=world.headers[("brand", "self")], status=401)
