"""Brand login: Argon2id verification, one answer for every failure, re-hash on old parameters.

Timing parity is checked structurally, not with a stopwatch: every failure (unknown email,
wrong password, deactivated brand) performs exactly one Argon2 verification, like a success.
"""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher

from cloutsy import passwords
from cloutsy.models import Brand, utcnow
from cloutsy.services import sessions

PASSWORD = "correct horse battery"


@pytest.fixture
def brand(client) -> int:
    body = {
        "email": "Shop@Example.com",
        "password": PASSWORD,
        "phone": "8876500001",
        "brandName": "Shop",
        "username": "shop",
    }
    return client.post_json("/brands", body, status=201).json["id"]


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """The hash each Argon2 verification ran against, in order."""
    seen: list[str] = []
    real = PasswordHasher.verify

    def counting(self, stored, password):  # noqa: ANN001, ANN202
        seen.append(stored)
        return real(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return seen


def login(client, email: str, password: str, status: int = 200):
    body = {"email": email, "password": password}
    return client.post_json("/auth/brands/login", body, status=status)


def test_login_returns_a_token_for_30_days_that_opens_me(client, brand):
    r = login(client, "shop@example.com", PASSWORD)
    expires = dt.datetime.fromisoformat(r.json["expiresAt"])
    assert abs(expires - (utcnow() + sessions.LIFETIME)) < dt.timedelta(minutes=1)
    assert len(r.json["token"]) >= 43  # 32 random bytes, base64url
    me = client.get("/me", headers={"Authorization": f"Bearer {r.json['token']}"}).json
    assert me["id"] == brand and me["email"] == "shop@example.com" and "password" not in me


def test_the_email_is_matched_whatever_its_case(client, brand):
    login(client, "  SHOP@example.COM ", PASSWORD)


def test_each_login_is_its_own_session(client, brand):
    first = login(client, "shop@example.com", PASSWORD).json["token"]
    second = login(client, "shop@example.com", PASSWORD).json["token"]
    assert first != second
    client.post("/auth/logout", headers={"Authorization": f"Bearer {first}"}, status=204)
    client.get("/me", headers={"Authorization": f"Bearer {first}"}, status=401)
    client.get("/me", headers={"Authorization": f"Bearer {second}"}, status=200)


def test_unknown_email_and_wrong_password_get_the_same_answer(client, brand, verifications):
    unknown = login(client, "nobody@example.com", PASSWORD, status=401)
    assert verifications == [passwords._DUMMY_HASH]  # the dummy-hash path was taken
    wrong = login(client, "shop@example.com", "wrong password!", status=401)
    assert verifications[1] == Brand.get_by_id(brand).password
    assert unknown.json == wrong.json
    assert unknown.json["error"] == {"code": "unauthorized", "message": sessions.BAD_CREDENTIALS}


def test_a_deactivated_brand_cannot_log_in_and_costs_the_same(client, brand, verifications):
    Brand.update(is_active=False).where(Brand.id == brand).execute()
    r = login(client, "shop@example.com", PASSWORD, status=401)
    assert r.json["error"]["message"] == sessions.BAD_CREDENTIALS
    assert len(verifications) == 1


def test_every_outcome_runs_exactly_one_verification(client, brand, verifications):
    for email, password, status in [
        ("shop@example.com", PASSWORD, 200),
        ("shop@example.com", "not the password", 401),
        ("ghost@example.com", "not the password", 401),
    ]:
        before = len(verifications)
        login(client, email, password, status=status)
        assert len(verifications) == before + 1


def test_an_old_hash_is_upgraded_on_login(client, brand):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    Brand.update(password=weak).where(Brand.id == brand).execute()
    assert passwords.needs_rehash(weak)
    login(client, "shop@example.com", PASSWORD)
    stored = Brand.get_by_id(brand).password
    assert stored != weak and stored.startswith("$argon2id$") and not passwords.needs_rehash(stored)
    login(client, "shop@example.com", PASSWORD)


def test_a_current_hash_is_left_alone(client, brand):
    before = Brand.get_by_id(brand).password
    login(client, "shop@example.com", PASSWORD)
    assert Brand.get_by_id(brand).password == before


def test_a_wrong_password_never_upgrades_the_hash(client, brand):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    Brand.update(password=weak).where(Brand.id == brand).execute()
    login(client, "shop@example.com", "not the password", status=401)
    assert Brand.get_by_id(brand).password == weak


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password"}),
        ({"email": "not-an-email", "password": PASSWORD}, {"email"}),
        ({"email": "shop@example.com", "password": ""}, {"password"}),
        ({"email": "shop@example.com", "password": "x" * 129}, {"password"}),
        ({"email": "shop@example.com", "password": PASSWORD, "remember": True}, {"remember"}),
    ],
)
def test_login_validation(client, body, fields):
    r = client.post_json("/auth/brands/login", body, status=400)
    assert r.json["error"]["code"] == "validation_error"
    assert {d["field"] for d in r.json["error"]["details"]} == fields


def test_a_short_password_is_just_wrong(client, brand):
    assert login(client, "shop@example.com", "short", status=401).json["error"]["code"] == (
        "unauthorized"
    )
