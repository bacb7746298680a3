"""OTP send and verify: codes stored keyed-hashed, expiry, single use, wrong-try and send limits.

Time is a controllable clock (`otp.clock`), never a sleep: now() inside a test's
transaction is frozen, so the service computes every time in Python.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from cloutsy.api.auth_routes import SENDER_KEY
from cloutsy.config import load_settings
from cloutsy.db import database
from cloutsy.errors import BadRequest, RateLimited
from cloutsy.models import Brand, Influencer, Otp, utcnow
from cloutsy.services import otp
from cloutsy.services.limits import Limiter
from cloutsy.services.lookup import holding, otp_key
from tests.helpers import Outbox, run_together

PHONE = "+919812345678"


def limiter(key: str) -> Limiter:
    """The default limits, as the service configures them."""
    return Limiter(load_settings({}).rate_limits, key)


class FakeClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(otp, "clock", fake)
    return fake


@pytest.fixture
def outbox(monkeypatch, wsgi_app) -> Outbox:
    box = Outbox()
    monkeypatch.setitem(wsgi_app.config, SENDER_KEY, box)
    return box


def send(client, phone: str = PHONE, status: int = 202):
    return client.post_json("/auth/otp/send", {"phone": phone}, status=status)


def verify(client, code: str, phone: str = PHONE, status: int = 200):
    return client.post_json("/auth/otp/verify", {"phone": phone, "otp": code}, status=status)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def sign_up(client, phone: str = PHONE) -> int:
    body = {"name": "Asha", "username": "asha", "email": "asha@example.com", "phone": phone}
    return client.post_json("/influencers", body, status=201).json["id"]


# --- sending -----------------------------------------------------------------------------


def test_send_stores_only_a_keyed_hash_and_answers_202(client, clock, outbox, settings):
    r = send(client, "98123 45678")
    code = r.json["debugOtp"]
    assert len(code) == 6 and code.isdigit()
    assert outbox.sent == [(PHONE, code)]
    assert dt.datetime.fromisoformat(r.json["expiresAt"]) == clock.now + dt.timedelta(minutes=5)
    row = Otp.get(Otp.phone == otp_key(PHONE))
    assert row.otp == otp.code_hash(settings.secret_key, PHONE, code) and len(row.otp) == 64
    assert code not in row.otp and not row.is_used and row.attempts == 0
    assert otp.code_hash("another-secret-key-0123456789", PHONE, code) != row.otp


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_code_is_never_in_the_response_outside_development(db, app_settings, env):
    from webtest import TestApp

    from cloutsy.api import create_app

    app = create_app(app_settings.with_overrides(env=env))
    box = Outbox()
    app.config[SENDER_KEY] = box
    r = TestApp(app).post_json("/auth/otp/send", {"phone": PHONE}, status=202)
    assert set(r.json) == {"expiresAt"} and len(box.sent) == 1


def test_the_default_sender_logs_a_masked_number_never_the_code(client, caplog):
    with caplog.at_level(logging.INFO, logger="cloutsy"):
        code = send(client, "+919812344321").json["debugOtp"]
    assert "+91******4321" in caplog.text
    assert code not in caplog.text and "+919812344321" not in caplog.text


def test_one_send_per_phone_per_30_seconds(client, clock, outbox):
    send(client)
    clock.advance(seconds=10)
    r = send(client, status=429)
    assert r.json["error"]["code"] == "rate_limited" and r.headers["Retry-After"] == "20"
    send(client, "+919812345679")  # another phone is not held back
    clock.advance(seconds=20)
    send(client)
    assert len(outbox.sent) == 3


def test_five_sends_per_phone_per_hour(client, clock, outbox):
    for _ in range(5):
        send(client)
        clock.advance(seconds=30)
    # t = 150 s: the first of the five leaves the window at t = 3600 s.
    r = send(client, status=429)
    assert r.headers["Retry-After"] == str(3600 - 150)
    clock.advance(seconds=3600 - 150 - 1)
    send(client, status=429)
    clock.advance(seconds=1)
    send(client)
    assert len(outbox.sent) == 6


def test_limits_live_in_the_database_not_in_a_process(client, clock, outbox, app_settings):
    """A second app (another worker, or after a restart) sees the same sends."""
    from webtest import TestApp

    from cloutsy.api import create_app

    send(client)
    other = create_app(app_settings)
    other.config[SENDER_KEY] = Outbox()
    r = TestApp(other).post_json("/auth/otp/send", {"phone": PHONE}, status=429)
    assert int(r.headers["Retry-After"]) == 30


def test_concurrent_sends_for_one_phone_let_exactly_one_through(committed, clock):

    def attempt() -> str:
        with database.connection_context():
            try:
                otp.send_code(PHONE, "k" * 32, Outbox(), limiter("k" * 32), "10.0.0.1")
                return "sent"
            except RateLimited:
                return "limited"

    outcomes = [run.result() for run in run_together(*[attempt] * 4)]
    assert sorted(outcomes) == ["limited", "limited", "limited", "sent"]
    with database.connection_context():
        assert Otp.select().where(Otp.phone == otp_key(PHONE)).count() == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"phone": "12345"}, {"phone"}),
        ({}, {"phone"}),
        ({"phone": PHONE, "extra": 1}, {"extra"}),
        ({"phone": 9812345678}, {"phone"}),
    ],
)
def test_send_validation(client, body, fields):
    r = client.post_json("/auth/otp/send", body, status=400)
    assert {d["field"] for d in r.json["error"]["details"]} == fields


# --- verifying ---------------------------------------------------------------------------


def test_a_correct_code_verifies_the_influencer_and_returns_a_token(client, clock, outbox):
    influencer_id = sign_up(client)
    code = send(client).json["debugOtp"]
    r = verify(client, code, phone="+91 98123 45678")
    assert r.json["verified"] is True
    assert r.json["account"] == {"type": "influencer", "id": influencer_id}
    me = client.get("/me", headers={"Authorization": f"Bearer {r.json['token']}"}).json
    assert me["id"] == influencer_id and me["isPhoneVerified"] is True and me["phone"] == PHONE
    assert Otp.get(Otp.phone == otp_key(PHONE)).is_used


def test_a_brand_phone_gets_a_brand_token(client, clock, outbox):
    body = {
        "email": "b@example.com",
        "password": "correct horse battery",
        "phone": PHONE,
        "brandName": "B",
        "username": "brand.b",
    }
    brand_id = client.post_json("/brands", body, status=201).json["id"]
    r = verify(client, send(client).json["debugOtp"])
    assert r.json["account"] == {"type": "brand", "id": brand_id}
    assert Brand.get_by_id(brand_id).is_phone_verified


def test_a_phone_without_an_account_is_verified_without_a_token(client, clock, outbox):
    r = verify(client, send(client).json["debugOtp"])
    assert r.json == {"verified": True}


def test_a_deactivated_account_gets_no_token(client, clock, outbox):
    influencer_id = sign_up(client)
    Influencer.update(is_active=False).where(Influencer.id == influencer_id).execute()
    assert verify(client, send(client).json["debugOtp"]).json == {"verified": True}


def test_a_wrong_code_is_400_and_counted(client, clock, outbox):
    sign_up(client)
    code = send(client).json["debugOtp"]
    r = verify(client, wrong(code), status=400)
    assert r.json["error"]["code"] == "bad_request"
    assert Otp.get(Otp.phone == otp_key(PHONE)).attempts == 1
    assert not Influencer.get(holding(Influencer, "phone", PHONE)).is_phone_verified


def test_five_wrong_tries_are_survived(client, clock, outbox):
    code = send(client).json["debugOtp"]
    for _ in range(5):
        verify(client, wrong(code), status=400)
    assert verify(client, code).json["verified"] is True


def test_the_sixth_wrong_try_is_429_and_kills_the_code(client, clock, outbox):
    code = send(client).json["debugOtp"]
    for _ in range(5):
        verify(client, wrong(code), status=400)
    clock.advance(seconds=10)
    r = verify(client, wrong(code), status=429)
    assert r.json["error"]["code"] == "rate_limited"
    assert r.headers["Retry-After"] == "20"  # when a new code may be sent
    verify(client, code, status=429)  # dead: even the right code
    clock.advance(seconds=20)
    fresh = send(client).json["debugOtp"]
    assert verify(client, fresh).json["verified"] is True


def test_an_expired_code_is_400(client, clock, outbox):
    code = send(client).json["debugOtp"]
    clock.advance(minutes=5)
    assert verify(client, code, status=400).json["error"]["code"] == "bad_request"


def test_a_code_works_until_its_last_second(client, clock, outbox):
    code = send(client).json["debugOtp"]
    clock.advance(minutes=5, seconds=-1)
    verify(client, code)


def test_a_code_works_once(client, clock, outbox):
    code = send(client).json["debugOtp"]
    verify(client, code)
    verify(client, code, status=400)


def test_a_new_code_supersedes_the_old_one(client, clock, outbox):
    old = send(client).json["debugOtp"]
    clock.advance(seconds=30)
    new = send(client).json["debugOtp"]
    if old != new:
        verify(client, old, status=400)
    verify(client, new)


def test_no_code_sent_is_400(client, clock):
    verify(client, "123456", status=400)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"phone": PHONE, "otp": "12345"}, {"otp"}),
        ({"phone": PHONE, "otp": "abcdef"}, {"otp"}),
        ({"phone": PHONE, "otp": 123456}, {"otp"}),
        ({"phone": "nope", "otp": "123456"}, {"phone"}),
        ({}, {"phone", "otp"}),
    ],
)
def test_verify_validation(client, body, fields):
    r = client.post_json("/auth/otp/verify", body, status=400)
    assert r.json["error"]["code"] == "validation_error"
    assert {d["field"] for d in r.json["error"]["details"]} == fields


def test_concurrent_verifications_of_one_code_succeed_once(committed, clock):
    key = "k" * 32
    with database.connection_context():
        Influencer.create(name="A", username="a.b.c", email="a@example.com", phone=PHONE)
        code = otp.send_code(PHONE, key, Outbox(), limiter(key), "10.0.0.1").code

    def attempt() -> str:
        with database.connection_context():
            try:
                found = otp.verify_code(PHONE, code, key, limiter(key), "10.0.0.1")
                return "token" if found.token else "none"
            except BadRequest:
                return "refused"

    outcomes = [run.result() for run in run_together(*[attempt] * 4)]
    assert sorted(outcomes) == ["refused", "refused", "refused", "token"]
