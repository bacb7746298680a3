"""The attack suite (issue 12): each cheap abuse replayed against the real app; each test
fails if its defence is removed.

WebTest drives the real WSGI app with small limits (set through the same
CLOUTSY_RATE_LIMITS parser the service uses) and made-up client addresses; one real
server (`invoke serve`) checks what only a listening process can show: no debug code on
a non-loopback address, X-Forwarded-For from an untrusted peer ignored, limits shared by
its workers and counted in /metrics.
"""

from __future__ import annotations

import json
import re
import threading

import pytest
from webtest import TestApp

from cloutsy import passwords
from cloutsy.api.auth_routes import SENDER_KEY
from cloutsy.config import parse_networks, parse_rate_limits
from cloutsy.db import current
from cloutsy.models import Brand, Influencer
from tests.helpers import Outbox
from tests.leak_check import checked_test_app

PASSWORD = "correct horse battery"


@pytest.fixture
def make(db, app_settings, suite_secrets):
    """make(limits="name=N/P,…", proxies="cidr,…", **settings) -> (client, outbox)."""

    def build(limits: str = "", proxies: str = "", **overrides):
        from cloutsy.api import create_app

        settings = app_settings.with_overrides(
            rate_limits=parse_rate_limits(limits),
            trusted_proxies=parse_networks(proxies),
            **overrides,
        )
        app = create_app(settings)
        box = Outbox()
        app.config[SENDER_KEY] = box
        return checked_test_app()(app, suite_secrets), box

    return build


def at(address: str, forwarded: str | None = None) -> dict:
    """WebTest keyword arguments for a request from `address` (optionally via XFF)."""
    environ = {"REMOTE_ADDR": address}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    return {"extra_environ": environ}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def influencer(client, n: int, phone: str, **kw) -> int:
    body = {"name": f"I{n}", "username": f"inf.{n}", "email": f"i{n}@example.com", "phone": phone}
    return client.post_json("/influencers", body, status=201, **kw).json["id"]


def brand(client, n: int, phone: str, **kw) -> int:
    body = {
        "email": f"b{n}@example.com",
        "password": PASSWORD,
        "phone": phone,
        "brandName": f"B{n}",
        "username": f"brand.{n}",
    }
    return client.post_json("/brands", body, status=201, **kw).json["id"]


def login(client, email: str, password: str, status: int, **kw):
    body = {"email": email, "password": password}
    return client.post_json("/auth/brands/login", body, status=status, **kw)


def limited(response, limit: str) -> int:
    """Assert a 429 in the contract's shape; return its Retry-After."""
    assert response.status_int == 429
    assert response.json["error"]["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert retry >= 1
    return retry


def metric(client, limit: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^cloutsy_rate_limited_total\{{limit="{limit}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# --- credential stuffing and login floods ------------------------------------------------


def test_credential_stuffing_over_many_emails_is_stopped_per_address(make, queries):
    client, _ = make("login_address=4/15m,login_email=off")
    brand(client, 1, "8800000001")
    before = metric(client, "login_address")
    for n in range(4):
        login(client, f"victim{n}@example.com", "guess-123456", 401, **at("203.0.113.7"))
    r = login(client, "victim9@example.com", "guess-123456", 429, **at("203.0.113.7"))
    assert 15 * 60 - 5 <= limited(r, "login_address") <= 15 * 60
    # Refused before any password is checked: even the right one from that address; and
    # once PostgreSQL said the address is full, this process refuses it without a query.
    with queries as q:
        login(client, "b1@example.com", PASSWORD, 429, **at("203.0.113.7"))
    assert q.count == 0
    # Other clients are not held back.
    login(client, "b1@example.com", PASSWORD, 200, **at("198.51.100.2"))
    assert metric(client, "login_address") == before + 2


def test_a_login_flood_on_one_email_is_stopped_whatever_the_address(make):
    client, _ = make("login_email=3/15m,login_address=off")
    brand(client, 1, "8800000001")
    for n in range(3):
        login(client, "B1@example.com", f"wrong-{n}-password", 401, **at(f"192.0.2.{n}"))
    r = login(client, "b1@example.com", PASSWORD, 429, **at("192.0.2.200"))
    limited(r, "login_email")
    login(client, "other@example.com", "whatever-1234", 401, **at("192.0.2.201"))


def test_only_failures_count_for_logins(make):
    client, _ = make("login_email=2/15m,login_address=2/15m")
    brand(client, 1, "8800000001")
    for _ in range(4):
        login(client, "b1@example.com", PASSWORD, 200, **at("192.0.2.9"))


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(make):
    client, _ = make("login_address=2/15m,login_email=off", proxies="10.0.0.0/8")
    # An untrusted peer cannot pick its own address by sending the header.
    for n in range(2):
        login(client, "x@example.com", "guess-1234567", 401, **at("203.0.113.9", f"1.1.1.{n}"))
    login(client, "x@example.com", "guess-1234567", 429, **at("203.0.113.9", "1.1.1.99"))
    # Behind the trusted balancer each real client has its own budget; a client's own
    # left-hand entries are not believed (the balancer appends the peer it saw).
    for n in range(2):
        login(
            client, "x@example.com", "guess-1234567", 401, **at("10.0.0.2", f"9.9.9.{n}, 5.5.5.5")
        )
    login(client, "x@example.com", "guess-1234567", 429, **at("10.0.0.2", "8.8.8.8, 5.5.5.5"))
    login(client, "x@example.com", "guess-1234567", 401, **at("10.0.0.2", "5.5.5.5, 5.5.5.6"))


def test_mass_sign_ups_from_one_address_are_limited_and_a_409_counts(make):
    client, _ = make("signup_address=3/1h")
    influencer(client, 1, "9800001301", **at("203.0.113.50"))
    r = client.post_json(  # probing whether an email is taken costs a slot too
        "/influencers",
        {"name": "P", "username": "probe", "email": "i1@example.com", "phone": "9800001302"},
        status=409,
        **at("203.0.113.50"),
    )
    assert r.json["error"]["details"][0]["field"] == "email"
    brand(client, 1, "9800001303", **at("203.0.113.50"))
    body = {"name": "Q", "username": "inf.4", "email": "i4@example.com", "phone": "9800001304"}
    r = client.post_json("/influencers", body, status=429, **at("203.0.113.50"))
    assert 3600 - 5 <= limited(r, "signup_address") <= 3600
    client.post_json("/influencers", body, status=201, **at("198.51.100.50"))


# --- password hashing never starves the pool -----------------------------------------------


def test_argon2_runs_with_no_pooled_connection_held(committed, wsgi_app, monkeypatch):
    """Sign-up and login hash while the pool has no connection checked out (no test
    transaction holds one here)."""
    from argon2 import PasswordHasher

    seen: list[int] = []
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify

    def hash_(self, password, **kw):  # noqa: ANN001, ANN202
        seen.append(current().pool_stats()["inUse"])
        return real_hash(self, password, **kw)

    def verify(self, stored, password):  # noqa: ANN001, ANN202
        seen.append(current().pool_stats()["inUse"])
        return real_verify(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "hash", hash_)
    monkeypatch.setattr(PasswordHasher, "verify", verify)
    app = TestApp(wsgi_app)
    body = {
        "email": "pool@example.com",
        "password": PASSWORD,
        "phone": "8800000077",
        "brandName": "Pool",
        "username": "pool.brand",
    }
    app.post_json("/brands", body, status=201)
    app.post_json("/auth/brands/login", {"email": "pool@example.com", "password": PASSWORD})
    app.post_json(
        "/auth/brands/login", {"email": "pool@example.com", "password": "wrong-1234"}, status=401
    )
    assert seen == [0, 0, 0]


def test_more_hashes_than_cores_wait_briefly_then_503(make, monkeypatch):
    client, _ = make()
    monkeypatch.setattr(passwords, "WAIT_S", 0.05)
    slots = threading.BoundedSemaphore(passwords.SLOTS)
    monkeypatch.setattr(passwords, "_slots", slots)
    for _ in range(passwords.SLOTS):  # every core busy hashing
        slots.acquire()
    r = login(client, "b1@example.com", PASSWORD, 503)
    assert r.json["error"]["code"] == "unavailable" and r.headers["Retry-After"] == "1"
    slots.release()
    login(client, "b1@example.com", PASSWORD, 401)  # a slot is free again (no such brand)


def test_beyond_the_few_waiting_requests_a_login_is_refused_at_once(make, monkeypatch):
    import time

    client, _ = make()
    monkeypatch.setattr(passwords, "WAIT_S", 5.0)
    slots = threading.BoundedSemaphore(passwords.SLOTS)
    waiting = threading.BoundedSemaphore(passwords.SLOTS)
    monkeypatch.setattr(passwords, "_slots", slots)
    monkeypatch.setattr(passwords, "_waiting", waiting)
    for _ in range(passwords.SLOTS):  # every core hashing, every waiting place taken
        slots.acquire()
        waiting.acquire()
    started = time.monotonic()
    r = login(client, "b1@example.com", PASSWORD, 503)
    assert time.monotonic() - started < 1.0  # no request thread parked for WAIT_S
    assert r.headers["Retry-After"] == "1"


# --- SMS pumping ------------------------------------------------------------------------------


def test_sms_pumping_over_many_numbers_from_one_client(make):
    client, box = make("otp_send_address=3/1h")
    for n in range(3):
        client.post_json("/auth/otp/send", {"phone": f"98000001{n:02d}"}, **at("203.0.113.20"))
    r = client.post_json(
        "/auth/otp/send", {"phone": "9800000199"}, status=429, **at("203.0.113.20")
    )
    assert 3600 - 5 <= limited(r, "otp_send_address") <= 3600
    assert len(box.sent) == 3  # the refused send cost nothing
    client.post_json("/auth/otp/send", {"phone": "9800000199"}, **at("203.0.113.21"))


def test_sms_pumping_from_many_clients_meets_the_global_budget(make):
    client, box = make("otp_send_total=4/1h", proxies="10.0.0.0/8")
    for n in range(4):
        client.post_json(
            "/auth/otp/send", {"phone": f"98000002{n:02d}"}, **at("10.0.0.1", f"100.64.0.{n}")
        )
    before = metric(client, "otp_send_total")
    r = client.post_json(
        "/auth/otp/send", {"phone": "9800000299"}, status=429, **at("10.0.0.1", "100.64.1.1")
    )
    limited(r, "otp_send_total")
    assert len(box.sent) == 4 and metric(client, "otp_send_total") == before + 1


def test_a_send_refused_by_one_limit_counts_for_none(make):
    client, box = make("otp_send_address=2/1h")
    client.post_json("/auth/otp/send", {"phone": "9800000301"}, **at("203.0.113.30"))
    for _ in range(3):  # the same phone again within 30 s: refused by otp_send_phone
        r = client.post_json(
            "/auth/otp/send", {"phone": "9800000301"}, status=429, **at("203.0.113.30")
        )
        assert 25 <= limited(r, "otp_send_phone") <= 30
    client.post_json("/auth/otp/send", {"phone": "9800000302"}, **at("203.0.113.30"))
    assert len(box.sent) == 2


# --- OTP guessing ---------------------------------------------------------------------------


def test_otp_guessing_across_resends_is_stopped_per_address(make, monkeypatch):
    import datetime as dt

    from cloutsy.models import utcnow
    from cloutsy.services import otp

    now = [utcnow()]
    monkeypatch.setattr(otp, "clock", lambda: now[0])
    client, box = make("otp_verify_address=8/1h")
    phones = ["9800000401", "9800000402"]
    guesses = 0
    for phone in phones:  # two numbers, two codes each: per code 5 tries would allow 20
        for _ in range(2):
            client.post_json("/auth/otp/send", {"phone": phone}, **at("203.0.113.40"))
            for _ in range(2):
                body = {"phone": phone, "otp": "000000"}
                if box.sent[-1][1] == "000000":
                    body["otp"] = "111111"
                client.post_json("/auth/otp/verify", body, status=400, **at("203.0.113.40"))
                guesses += 1
            now[0] += dt.timedelta(seconds=31)
    assert guesses == 8
    phone, code = box.sent[-1]
    r = client.post_json(
        "/auth/otp/verify", {"phone": phone, "otp": code}, status=429, **at("203.0.113.40")
    )
    limited(r, "otp_verify_address")
    # The owner of the phone, elsewhere, is not locked out.
    client.post_json("/auth/otp/verify", {"phone": phone, "otp": code}, **at("198.51.100.40"))


# --- who a phone belongs to ------------------------------------------------------------------


def test_an_influencers_code_never_verifies_nor_logs_into_a_brand_with_that_phone(make):
    client, box = make()
    influencer_id = influencer(client, 1, "9800000501")
    brand_id = brand(client, 1, "9800000501")  # a brand registered with her number
    code = client.post_json("/auth/otp/send", {"phone": "9800000501"}).json["debugOtp"]
    r = client.post_json("/auth/otp/verify", {"phone": "9800000501", "otp": code}).json
    assert r["account"] == {"type": "influencer", "id": influencer_id}
    assert Influencer.get_by_id(influencer_id).is_phone_verified
    assert not Brand.get_by_id(brand_id).is_phone_verified
    me = client.get("/me", headers=bearer(r["token"])).json
    assert me["id"] == influencer_id and "brandName" not in me


def test_account_type_at_send_picks_the_one_account(make, monkeypatch):
    import datetime as dt

    from cloutsy.models import utcnow
    from cloutsy.services import otp

    monkeypatch.setattr(otp, "clock", lambda: utcnow() + dt.timedelta(hours=2))
    client, _ = make("otp_send_phone=off")
    influencer_id = influencer(client, 1, "9800000601")
    brand_id = brand(client, 1, "9800000601")
    send = {"phone": "9800000601", "accountType": "brand"}
    code = client.post_json("/auth/otp/send", send).json["debugOtp"]
    r = client.post_json("/auth/otp/verify", {"phone": "9800000601", "otp": code}).json
    assert r["account"] == {"type": "brand", "id": brand_id}
    me = client.get("/me", headers=bearer(r["token"])).json
    assert me["id"] == brand_id and "brandName" in me and me["isPhoneVerified"]
    assert not Influencer.get_by_id(influencer_id).is_phone_verified


def test_phone_squatting_does_not_lock_the_owner_out(make):
    client, _ = make()
    squatter = influencer(client, 1, "9800000701")  # claims a number it cannot prove
    owner = influencer(client, 2, "9800000701")  # 201, not 409
    assert Influencer.get_by_id(squatter).phone is None
    assert Influencer.get_by_id(owner).phone == "+919800000701"
    code = client.post_json("/auth/otp/send", {"phone": "9800000701"}).json["debugOtp"]
    r = client.post_json("/auth/otp/verify", {"phone": "9800000701", "otp": code}).json
    assert r["account"] == {"type": "influencer", "id": owner}
    # Once proved, the phone is taken for influencers (409), still free for brands.
    r = client.post_json(
        "/influencers",
        {"name": "X", "username": "inf.3", "email": "i3@example.com", "phone": "9800000701"},
        status=409,
    )
    assert r.json["error"]["details"][0]["field"] == "phone"
    brand(client, 1, "9800000701")


def test_patching_the_phone_with_a_stolen_token_is_only_pending(make, monkeypatch):
    import datetime as dt

    from cloutsy.models import utcnow
    from cloutsy.services import otp

    monkeypatch.setattr(otp, "clock", lambda: utcnow() + dt.timedelta(hours=3))
    client, _ = make("otp_send_phone=off,otp_send_phone_hourly=off")
    victim = influencer(client, 1, "9800000801")
    code = client.post_json("/auth/otp/send", {"phone": "9800000801"}).json["debugOtp"]
    stolen = client.post_json("/auth/otp/verify", {"phone": "9800000801", "otp": code}).json
    stolen_token = stolen["token"]

    r = client.patch_json(
        f"/influencers/{victim}", {"phone": "9800000899"}, headers=bearer(stolen_token)
    )
    assert r.json["phone"] == "+919800000801" and r.json["pendingPhone"] == "+919800000899"
    assert r.json["isPhoneVerified"] is True
    # The owner still logs in with the old number; nothing moved.
    code = client.post_json("/auth/otp/send", {"phone": "9800000801"}).json["debugOtp"]
    owner = client.post_json("/auth/otp/verify", {"phone": "9800000801", "otp": code}).json
    assert owner["account"] == {"type": "influencer", "id": victim}
    assert Influencer.get_by_id(victim).phone == "+919800000801"

    # Only a code sent to the new number makes the change, and it ends every other session.
    send = {"phone": "9800000899", "accountType": "influencer"}
    code = client.post_json("/auth/otp/send", send).json["debugOtp"]
    done = client.post_json("/auth/otp/verify", {"phone": "9800000899", "otp": code}).json
    assert done["account"] == {"type": "influencer", "id": victim}
    assert Influencer.get_by_id(victim).phone == "+919800000899"
    client.get("/me", headers=bearer(stolen_token), status=401)
    client.get("/me", headers=bearer(owner["token"]), status=401)
    me = client.get("/me", headers=bearer(done["token"])).json
    assert me["phone"] == "+919800000899" and me["pendingPhone"] is None


def test_a_phone_proved_by_another_account_cannot_be_patched_in(make):
    client, _ = make()
    owner = influencer(client, 1, "9800000901")
    Influencer.update(is_phone_verified=True).where(Influencer.id == owner).execute()
    other = influencer(client, 2, "9800000902")
    code = client.post_json("/auth/otp/send", {"phone": "9800000902"}).json["debugOtp"]
    token = client.post_json("/auth/otp/verify", {"phone": "9800000902", "otp": code}).json
    r = client.patch_json(
        f"/influencers/{other}",
        {"phone": "9800000901"},
        headers=bearer(token["token"]),
        status=409,
    )
    assert r.json["error"]["details"][0]["field"] == "phone"


# --- fail-closed debug codes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "host"), [("development", "0.0.0.0"), ("development", "10.0.0.5"), ("staging", "::1")]
)
def test_no_debug_code_unless_development_on_loopback(make, env, host):
    client, box = make(env=env, host=host)
    r = client.post_json("/auth/otp/send", {"phone": "9800001001"}, status=202)
    assert set(r.json) == {"expiresAt"} and len(box.sent) == 1


def test_the_debug_code_is_there_in_development_on_loopback(make):
    client, box = make(env="development", host="127.0.0.1")
    r = client.post_json("/auth/otp/send", {"phone": "9800001002"}, status=202)
    assert r.json["debugOtp"] == box.sent[0][1]


# --- odd input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/influencers/%C2%B2", "/brands/%D9%A3", "/niches/a%00b", "/influencers?limit=%C2%B2"],
)
def test_odd_but_legal_input_is_never_a_500(client, path):
    r = client.get(path, expect_errors=True)
    assert r.status_int in (400, 404) and r.json["error"]["code"] in ("bad_request", "not_found")


# --- one real server ------------------------------------------------------------------------


@pytest.fixture
def public_server(pool, tmp_path):
    """`invoke serve` listening on 0.0.0.0 in development, two workers, small limits."""
    from tests.conftest import truncate_all
    from tests.engines import start_server

    truncate_all(pool)
    server = start_server(
        tmp_path,
        CLOUTSY_HOST="0.0.0.0",
        CLOUTSY_RATE_LIMITS="otp_send_address=3/1h",
    )
    yield server
    server.stop()
    truncate_all(pool)


def test_a_real_server_on_a_public_address_hands_out_no_code_and_ignores_spoofed_xff(
    public_server,
):
    from tests.helpers import http

    url = public_server.url
    answers = []
    for n in range(5):  # two workers; each request claims another client address
        headers = {"X-Forwarded-For": f"100.64.9.{n}"}
        status, head, body = http(
            "POST", f"{url}/auth/otp/send", {"phone": f"98000011{n:02d}"}, headers
        )
        answers.append((status, json.loads(body), head.get("Retry-After")))
    assert [a[0] for a in answers] == [202, 202, 202, 429, 429]
    assert all(set(a[1]) == {"expiresAt"} for a in answers[:3])  # never a debugOtp
    assert answers[3][1]["error"]["code"] == "rate_limited" and int(answers[3][2]) > 3500
    status, _, text = http("GET", f"{url}/metrics")
    assert status == 200
    assert re.search(
        r'^cloutsy_rate_limited_total\{limit="otp_send_address"\} 2\.0$', text.decode(), re.M
    )
    log = public_server.log.read_text()
    assert "Traceback" not in log


def test_a_verified_phone_change_releases_an_unproved_claim_on_that_number(make):
    client, _ = make()
    squatter = influencer(client, 1, "9800001201")  # holds the number, never proved it
    mover = influencer(client, 2, "9800001202")
    code = client.post_json("/auth/otp/send", {"phone": "9800001202"}).json["debugOtp"]
    token = client.post_json("/auth/otp/verify", {"phone": "9800001202", "otp": code}).json
    client.patch_json(
        f"/influencers/{mover}", {"phone": "9800001201"}, headers=bearer(token["token"])
    )
    # The signed-in owner's pending change, not the squatter's claim, gets the code.
    code = client.post_json("/auth/otp/send", {"phone": "9800001201"}).json["debugOtp"]
    done = client.post_json("/auth/otp/verify", {"phone": "9800001201", "otp": code}).json
    assert done["account"] == {"type": "influencer", "id": mover}
    assert Influencer.get_by_id(mover).phone == "+919800001201"
    assert Influencer.get_by_id(mover).is_phone_verified
    assert Influencer.get_by_id(squatter).phone is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLOUTSY_ENV": "production"}, "DATABASE_URL"),  # the embedded server is refused
        ({"CLOUTSY_ENV": "staging", "CLOUTSY_SECRET_KEY": ""}, "CLOUTSY_SECRET_KEY"),
        ({"CLOUTSY_ADMIN_TOKEN": "short-admin-token"}, "CLOUTSY_ADMIN_TOKEN"),
    ],
)
def test_serve_refuses_to_start_unsafely_with_one_line(env, named):
    import os
    import subprocess
    import sys

    from cloutsy.ports import free_port
    from tests.helpers import ROOT

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "POSTGRES_HOST", "CLOUTSY_ENV", "CLOUTSY_ADMIN_TOKEN")
    }
    run = subprocess.run(
        [sys.executable, "-m", "invoke", "serve"],
        cwd=ROOT,
        env=dict(base, CLOUTSY_PORT=str(free_port()), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (run.stdout + run.stderr).strip()
    assert run.returncode == 2, output
    assert named in output and "Traceback" not in output and len(output.splitlines()) == 1
