"""Idempotency keys (CONTRACT §5 "Idempotent retries") on the four POSTs that accept them."""

from __future__ import annotations

import datetime as dt
import functools
import threading

from webtest import TestApp

from cloutsy import passwords
from cloutsy.models import IdempotencyKey, Influencer, Niche, Otp
from cloutsy.services import accounts, idempotency
from cloutsy.services.lookup import otp_key
from cloutsy.services.purge import purge
from tests.helpers import ROOT, Background, influencer_body, run_together

KEY = "7f1d0c1e-2b8a-4c55-9a4e-0d2f3b6a9e11"


signup = functools.partial(influencer_body, tag="retry", phone_prefix="98123")


def key(value: str = KEY, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": value, **headers}


def assert_error(response, status: int, code: str) -> None:
    assert response.status_int == status
    assert response.json["error"]["code"] == code
    assert response.headers["X-Request-Id"]


def test_a_retried_sign_up_gets_the_same_201_and_creates_one_account(client):
    first = client.post_json("/influencers", signup(), headers=key(), status=201)
    again = client.post_json("/influencers", signup(), headers=key(), status=201)
    assert again.json == first.json
    assert (
        again.headers["Location"] == first.headers["Location"] == f"/influencers/{first.json['id']}"
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Cache-Control"] == "private, no-store"
    assert Influencer.select().where(Influencer.username == "retry1").count() == 1
    # without a key the same body is a new attempt: 409, as before
    assert_error(client.post_json("/influencers", signup(), status=409), 409, "conflict")


def test_a_replay_renders_the_resource_afresh(client):
    first = client.post_json("/brands", brand(), headers=key(), status=201)
    Influencer.update(name="x").execute()  # unrelated
    from cloutsy.models import Brand

    Brand.update(brand_bio="changed since").where(Brand.id == first.json["id"]).execute()
    again = client.post_json("/brands", brand(), headers=key(), status=201)
    assert again.json["id"] == first.json["id"] and again.json["brandBio"] == "changed since"


def brand():
    return {
        "email": "keyed@example.com",
        "password": "correct horse battery",
        "phone": "8812300099",
        "brandName": "Keyed",
        "username": "keyed",
    }


def test_the_same_key_with_another_body_is_422(client):
    client.post_json("/influencers", signup(1), headers=key(), status=201)
    r = client.post_json("/influencers", signup(2), headers=key(), status=422)
    assert_error(r, 422, "idempotency_key_reused")
    assert Influencer.select().where(Influencer.username == "retry2").count() == 0


def test_a_key_of_another_caller_or_route_does_not_replay(client):
    client.post_json("/influencers", signup(), headers=key(), status=201)
    # another client address: a new attempt (so the username is taken)
    other = client.post_json(
        "/influencers",
        signup(),
        headers=key(),
        extra_environ={"REMOTE_ADDR": "10.9.8.7"},
        status=409,
    )
    assert "Idempotent-Replayed" not in other.headers
    # another credential: the same
    client.post_json(
        "/influencers", signup(), headers=key(Authorization="Bearer nobody-xyz"), status=409
    )
    # another route: the key means nothing there yet
    sent = client.post_json("/auth/otp/send", {"phone": "9812300001"}, headers=key(), status=202)
    assert "Idempotent-Replayed" not in sent.headers


def test_a_refused_request_frees_its_key(client):
    bad = client.post_json("/influencers", signup(email="nope"), headers=key(), status=400)
    assert_error(bad, 400, "validation_error")
    client.post_json("/influencers", signup(), headers=key(), status=201)


def test_a_bad_key_is_400(client):
    for value in ("", "x" * 256, "é", " lead", "tab\there"):
        r = client.post_json("/influencers", signup(), headers=key(value), expect_errors=True)
        assert_error(r, 400, "bad_request")
    assert client.post_json("/influencers", signup(), headers=key("k" * 255)).status_int == 201


def test_a_retried_otp_send_does_not_burn_the_30_second_limit(client):
    first = client.post_json("/auth/otp/send", {"phone": "9812300005"}, headers=key(), status=202)
    again = client.post_json("/auth/otp/send", {"phone": "9812300005"}, headers=key(), status=202)
    assert again.json["expiresAt"] == first.json["expiresAt"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Otp.select().where(Otp.phone == otp_key("+919812300005")).count() == 1
    # a new key is a new send: the limit applies
    client.post_json("/auth/otp/send", {"phone": "9812300005"}, headers=key("2"), status=429)


def test_a_retried_otp_verify_answers_again_with_a_working_token(client):
    person = client.post_json("/influencers", signup(7), status=201).json
    code = client.post_json("/auth/otp/send", {"phone": "9812300007"}).json["debugOtp"]
    body = {"phone": "9812300007", "otp": code}
    first = client.post_json("/auth/otp/verify", body, headers=key(), status=200).json
    again = client.post_json("/auth/otp/verify", body, headers=key(), status=200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["account"] == first["account"] == {"type": "influencer", "id": person["id"]}
    me = client.get("/me", headers={"Authorization": f"Bearer {again.json['token']}"})
    assert me.json["id"] == person["id"]
    # without the key the used code is refused, as before
    client.post_json("/auth/otp/verify", body, status=400)


def test_a_wrong_code_is_still_counted_when_a_key_is_sent(client):
    code = client.post_json("/auth/otp/send", {"phone": "9812300008"}).json["debugOtp"]
    body = {"phone": "9812300008", "otp": "111111" if code != "111111" else "222222"}
    for attempt in (1, 2):
        r = client.post_json("/auth/otp/verify", body, headers=key(), status=400)
        assert "Idempotent-Replayed" not in r.headers
        assert Otp.get(Otp.phone == otp_key("+919812300008")).attempts == attempt


def test_the_row_holds_no_pii_and_expires_after_24_hours(client, db):
    person = client.post_json("/influencers", signup(3), headers=key(), status=201).json
    rows = list(IdempotencyKey.select().dicts())
    assert len(rows) == 1
    row = rows[0]
    assert row["response"] == f'{{"id":{person["id"]}}}' and row["status"] == 201
    text = " ".join(str(v) for v in row.values())
    for value in ("retry3", "9812300003", KEY, "127.0.0.1"):
        assert value not in text
    assert row["expires_at"] - row["created_at"] == dt.timedelta(hours=24)
    # past 24 h the key is forgotten: the same request is a new attempt (409: taken)
    later = row["created_at"] + dt.timedelta(hours=24, seconds=1)
    try:
        idempotency.clock = lambda: later
        client.post_json("/influencers", signup(3), headers=key(), status=409)
    finally:
        idempotency.clock = idempotency.utcnow
    assert purge(later)["idempotency keys"] == 0  # the failed attempt freed the key
    client.post_json("/influencers", signup(4), headers=key("other"), status=201)
    assert purge(later + dt.timedelta(hours=24))["idempotency keys"] == 1
    assert IdempotencyKey.select().count() == 0


def test_a_crash_after_the_write_leaves_neither_the_account_nor_the_key(client, monkeypatch):
    real = accounts.link_niches

    def link_then_crash(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("the process died here")

    monkeypatch.setattr(accounts, "link_niches", link_then_crash)
    r = client.post_json("/influencers", signup(5), headers=key(), status=500)
    assert_error(r, 500, "internal_error")
    assert Influencer.select().where(Influencer.username == "retry5").count() == 0
    assert IdempotencyKey.select().count() == 0
    monkeypatch.setattr(accounts, "link_niches", real)
    client.post_json("/influencers", signup(5), headers=key(), status=201)


# --- concurrency: real commits, one connection per thread -----------------------------------


def test_a_retry_while_the_first_is_running_is_409_and_never_a_second_account(
    committed, wsgi_app, monkeypatch
):
    entered, release = threading.Event(), threading.Event()
    real = accounts.link_niches

    def slow_link(*args, **kwargs):
        entered.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(accounts, "link_niches", slow_link)
    with committed.connection_context():
        fashion = Niche.get(Niche.slug == "fashion").id
    body = signup(6, nicheIds=[fashion])

    def first() -> int:
        r = TestApp(wsgi_app).post_json("/influencers", body, headers=key(), expect_errors=True)
        return r.status_int

    running_first = Background(first)
    try:
        assert entered.wait(10)
        running = TestApp(wsgi_app).post_json(
            "/influencers", body, headers=key(), expect_errors=True
        )
        assert_error(running, 409, "conflict")
        assert running.json["error"]["details"][0]["field"] == "Idempotency-Key"
    finally:
        release.set()
    assert running_first.result(20) == 201
    monkeypatch.setattr(accounts, "link_niches", real)
    replay = TestApp(wsgi_app).post_json("/influencers", body, headers=key(), status=201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    with committed.connection_context():
        assert Influencer.select().where(Influencer.username == "retry6").count() == 1


def test_simultaneous_requests_with_one_key_create_one_account(committed, wsgi_app, monkeypatch):
    # Four brand sign-ups hash at once: on a busy machine the low-priority hashing outlasts
    # the 0.5 s wait for a slot (a 503, tested in test_attacks.py), which is not this subject.
    monkeypatch.setattr(passwords, "WAIT_S", 30.0)

    def post() -> tuple[int, bool]:
        r = TestApp(wsgi_app).post_json("/brands", brand(), headers=key(), expect_errors=True)
        return r.status_int, r.headers.get("Idempotent-Replayed") == "true"

    statuses = [run.result() for run in run_together(*[post] * 4)]
    assert {s for s, _ in statuses} <= {201, 409}
    fresh = [s for s, replayed in statuses if s == 201 and not replayed]
    assert len(fresh) == 1, statuses
    with committed.connection_context():
        from cloutsy.models import Brand

        assert Brand.select().where(Brand.username == "keyed").count() == 1


def test_invoke_db_purge_deletes_expired_keys(committed):
    import subprocess
    import sys

    now = idempotency.utcnow()
    with committed.connection_context():
        for name, expires in (
            ("old", now - dt.timedelta(seconds=1)),
            ("new", now + dt.timedelta(hours=1)),
        ):
            IdempotencyKey.insert(
                key_hash=name * 8, fingerprint="f" * 64, status=201, expires_at=expires
            ).execute()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "db.purge"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 idempotency keys" in result.stdout
    with committed.connection_context():
        assert [k.key_hash for k in IdempotencyKey.select()] == ["new" * 8]
