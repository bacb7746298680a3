"""Data protection (CONTRACT §9): ciphertext at rest, blind indexes, erasure, the 0002 upgrade."""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import pytest

from cloutsy import analytics, backup, crypto, migrations
from cloutsy.db import database
from cloutsy.models import PII_COLUMNS, Brand, Influencer, Niche
from cloutsy.services import sessions
from cloutsy.services.lookup import otp_key
from tests.leak_check import checked_test_app

# Known PII of the accounts below; none of it may appear in the database's bytes.
INFLUENCER = {
    "name": "Meera Iyer",
    "username": "meera.iyer",
    "email": "meera.secret@example.com",
    "phone": "+919845012345",
    "dateOfBirth": "1994-07-19",
}
BRAND = {
    "email": "founder.hidden@brandco.example",
    "password": "correct horse battery staple",
    "phone": "+918845067890",
    "brandName": "Brandco",
    "username": "brandco",
    "brandEmailId": "contact.hidden@brandco.example",
    "pocName": "Zarathustra Quux",
    "pocDesignation": "Chief Whisperer",
    "pocEmailId": "zarathustra.quux@brandco.example",
    "pocContactNumber": "+919700011122",
    "incorporationDocument": "https://docs.example.com/hidden/incorp-7781.pdf",
    "gstDocument": "https://docs.example.com/hidden/gst-7781.pdf",
    "panDocument": "https://docs.example.com/hidden/pan-7781.pdf",
}
SECRETS = [
    INFLUENCER["email"],
    INFLUENCER["phone"],
    INFLUENCER["phone"][3:],
    INFLUENCER["dateOfBirth"],
    *(v for k, v in BRAND.items() if k not in ("password", "brandName", "username")),
    BRAND["phone"][3:],
    BRAND["pocContactNumber"][3:],
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def niche_ids(*slugs: str) -> list[int]:
    return [Niche.get(Niche.slug == s).id for s in slugs]


# --- the codec --------------------------------------------------------------------------------


def test_the_codec_round_trips_with_a_fresh_nonce_and_the_key_id():
    ring = crypto.Keyring.from_settings(_settings(("k1", b"\x01" * 32)))
    one = ring.encrypt("influencers", "email", "a@b.io")
    two = ring.encrypt("influencers", "email", "a@b.io")
    assert one != two and one.startswith("k1:") and crypto.key_id(one) == "k1"
    assert ring.decrypt("influencers", "email", one) == "a@b.io"
    assert ring.encrypt("influencers", "email", None) is None


@pytest.mark.parametrize(
    ("table", "column"), [("influencers", "phone"), ("brands", "email"), ("brands", "poc_email_id")]
)
def test_a_value_does_not_decrypt_in_another_column(table, column):
    ring = crypto.Keyring.from_settings(_settings(("k1", b"\x01" * 32)))
    sealed = ring.encrypt("influencers", "email", "a@b.io")
    with pytest.raises(crypto.Undecryptable, match=f"{table}.{column}"):
        ring.decrypt(table, column, sealed)


def test_an_unknown_key_or_a_tampered_value_does_not_decrypt():
    ring = crypto.Keyring.from_settings(_settings(("k1", b"\x01" * 32)))
    other = crypto.Keyring.from_settings(_settings(("k9", b"\x02" * 32)))
    with pytest.raises(crypto.Undecryptable, match="unknown key"):
        ring.decrypt("influencers", "email", other.encrypt("influencers", "email", "x"))
    sealed = ring.encrypt("influencers", "email", "a@b.io")
    at = len("k1:") + 20  # a ciphertext character (not base64 padding bits)
    flipped = sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]
    with pytest.raises(crypto.Undecryptable):
        ring.decrypt("influencers", "email", flipped)


def test_blind_indexes_are_keyed_and_normalised():
    ring = crypto.Keyring.from_settings(_settings(("k1", b"\x01" * 32)))
    assert ring.digest("a@b.io") == ring.digest("a@b.io") and len(ring.digest("a@b.io")) == 64
    assert crypto.digest_of("email", "A@B.io") == crypto.digest_of("email", "a@b.io")
    other = crypto.Keyring(ring.current_id, ring.ciphers, b"\x03" * 32)
    assert other.digest("a@b.io") != ring.digest("a@b.io")


def _settings(*keys: tuple[str, bytes]):
    from cloutsy.config import load_settings

    return load_settings({}).with_overrides(data_keys=keys, lookup_key=b"\x07" * 32)


# --- what the database holds -------------------------------------------------------------------


def _sign_up_both(client) -> tuple[int, int]:
    influencer = client.post_json(
        "/influencers", {**INFLUENCER, "nicheIds": niche_ids("food")}, status=201
    ).json
    brand = client.post_json("/brands", {**BRAND, "nicheIds": niche_ids("travel")}, status=201).json
    assert influencer["email"] == INFLUENCER["email"]  # the private view is decrypted
    assert influencer["dateOfBirth"] == INFLUENCER["dateOfBirth"]
    assert brand["panDocument"] == BRAND["panDocument"]
    return influencer["id"], brand["id"]


def test_every_pii_column_holds_ciphertext_and_private_views_decrypt(client):
    person_id, brand_id = _sign_up_both(client)
    for table, account_id in (("influencers", person_id), ("brands", brand_id)):
        columns = PII_COLUMNS[table]
        row = database.execute_sql(
            f"SELECT {', '.join(columns)}, email_digest, phone_digest FROM {table} WHERE id = %s",
            (account_id,),
        ).fetchone()
        for column, value in zip(columns, row, strict=False):
            assert value is not None and value.startswith("dev:"), (table, column)
            assert not any(secret in value for secret in SECRETS)
        assert len(row[-1]) == len(row[-2]) == 64
    token = sessions.issue("brand", brand_id)[0]
    assert client.get("/me", headers=bearer(token)).json["pocName"] == BRAND["pocName"]
    public = client.get(f"/brands/{brand_id}").json
    assert "pocName" not in public and "email" not in public


def test_a_pg_dump_holds_none_of_the_known_pii(committed, settings, wsgi_app, suite_secrets, tmp):
    client = checked_test_app()(wsgi_app, suite_secrets)
    with database.connection_context():
        _sign_up_both(client)
        for phone in (INFLUENCER["phone"], BRAND["phone"]):  # OTP rows key on the number too
            client.post_json("/auth/otp/send", {"phone": phone}, status=202)
    path = backup.backup(settings, tmp)
    tool = backup.find_tool("pg_restore", backup.server_major())
    # The custom format is compressed: turn it into plain SQL and search those bytes too.
    plain = subprocess.run([str(tool), "-f", "-", str(path)], capture_output=True, check=True)
    assert b"COPY public.influencers" in plain.stdout and b"dev:" in plain.stdout
    for data in (path.read_bytes(), plain.stdout):
        leaked = [s for s in SECRETS if s.encode() in data]
        assert leaked == []


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def test_a_value_copied_into_another_column_fails_with_the_contracts_error_shape(client, caplog):
    person_id, _ = _sign_up_both(client)
    database.execute_sql("UPDATE influencers SET phone = email WHERE id = %s", (person_id,))
    token = sessions.issue("influencer", person_id)[0]
    res = client.get("/me", headers=bearer(token), status=500)
    error = res.json["error"]
    assert error["code"] == "internal_error" and error["requestId"]
    assert "influencers.phone" in error["message"] and "does not decrypt" in error["message"]
    assert "Traceback" not in res.text and "SELECT" not in res.text
    assert client.get(f"/influencers/{person_id}").status_int == 200  # public view: no PII


def test_conflicts_still_name_the_field_through_the_digests(client):
    _sign_up_both(client)
    taken = {**INFLUENCER, "username": "other", "email": "MEERA.SECRET@example.com"}
    res = client.post_json("/influencers", {**taken, "phone": "+919845099999"}, status=409)
    assert res.json["error"]["details"][0]["field"] == "email"
    # A proved phone is taken (an unproved claim would be released, CONTRACT §6).
    database.execute_sql("UPDATE influencers SET is_phone_verified = true")
    res = client.post_json(
        "/influencers", {**INFLUENCER, "username": "xx2", "email": "x2@e.io"}, status=409
    )
    assert res.json["error"]["details"][0]["field"] == "phone"


def test_login_by_email_and_otp_by_phone_are_one_indexed_lookup(client, queries):
    _sign_up_both(client)
    plan = database.execute_sql(
        "EXPLAIN SELECT id FROM brands WHERE email_digest = %s",
        (crypto.digest_of("email", BRAND["email"]),),
    ).fetchall()
    assert "brands_email_digest" in " ".join(r[0] for r in plan)
    body = {"email": BRAND["email"].upper(), "password": BRAND["password"]}
    with queries as q:
        assert client.post_json("/auth/brands/login", body, status=200).json["token"]
    # the two login limits (per email, per address), the lookup, then the session insert
    # in its transaction
    assert q.count <= 6
    sent = client.post_json("/auth/otp/send", {"phone": INFLUENCER["phone"]}, status=202).json
    verified = client.post_json(
        "/auth/otp/verify", {"phone": INFLUENCER["phone"], "otp": sent["debugOtp"]}
    ).json
    assert verified["account"]["type"] == "influencer"


# --- erasure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["influencer", "brand"])
def test_erasure_frees_the_values_leaves_no_pii_and_keeps_the_analytics(
    client, kind, admin_headers
):
    person_id, brand_id = _sign_up_both(client)
    account_id = person_id if kind == "influencer" else brand_id
    model = Influencer if kind == "influencer" else Brand
    token = sessions.issue(kind, account_id)[0]
    phone = (INFLUENCER if kind == "influencer" else BRAND)["phone"]
    client.post_json("/auth/otp/send", {"phone": phone}, status=202)
    niches_before = _niche_links(kind, account_id)

    client.post(f"/{kind}s/{account_id}/erase", headers=bearer(token), status=204)

    table = model._meta.table_name
    row = database.execute_sql(
        f"SELECT to_jsonb(t) FROM {table} t WHERE id = %s", (account_id,)
    ).fetchone()[0]
    for column in (*PII_COLUMNS[table], "email_digest", "phone_digest"):
        assert row[column] is None, column
    assert row["erased_at"] is not None and row["is_active"] is False
    assert row["username"] == f"~{account_id}"
    assert row.get("is_profile_completed", False) is False
    assert not any(secret in str(row) for secret in SECRETS)
    assert _niche_links(kind, account_id) == niches_before  # analytics keep the niches
    assert (
        database.execute_sql(
            "SELECT count(*) FROM sessions WHERE subject_type = %s AND subject_id = %s",
            (kind, account_id),
        ).fetchone()[0]
        == 0
    )
    otps = database.execute_sql("SELECT count(*) FROM otps WHERE phone = %s", (otp_key(phone),))
    assert otps.fetchone()[0] == 0
    client.get(f"/{kind}s/{account_id}", status=404)
    client.get("/me", headers=bearer(token), status=401)
    client.post(f"/{kind}s/{account_id}/erase", headers=admin_headers, status=404)
    # Its username, email and phone sign up again at once.
    again = dict(INFLUENCER if kind == "influencer" else BRAND)
    client.post_json(f"/{kind}s", again, status=201)


def _niche_links(kind: str, account_id: int) -> list[int]:
    rows = database.execute_sql(
        f"SELECT niche_id FROM {kind}_niches WHERE {kind}_id = %s ORDER BY niche_id", (account_id,)
    ).fetchall()
    return [r[0] for r in rows]


def test_erasure_is_self_or_admin(client, admin_headers):
    person_id, brand_id = _sign_up_both(client)
    brand_token = sessions.issue("brand", brand_id)[0]
    client.post(f"/influencers/{person_id}/erase", status=401)
    client.post(f"/influencers/{person_id}/erase", headers=bearer(brand_token), status=403)
    client.post(f"/influencers/{person_id}/erase", headers=admin_headers, status=204)
    client.post("/influencers/999999/erase", headers=admin_headers, status=404)


def test_analytics_still_count_an_erased_accounts_sign_up_and_niches(client, admin_headers):
    person_id, _ = _sign_up_both(client)
    before = analytics.signups("day")
    funnel = analytics.verification_funnel()
    client.post(f"/influencers/{person_id}/erase", headers=admin_headers, status=204)
    assert analytics.signups("day").equals(before)
    assert before["influencers"].sum() == 1
    assert analytics.verification_funnel()["signed_up"].tolist() == funnel["signed_up"].tolist()
    # Its niche links stay (the per-niche figures count active accounts, as for deactivation).
    assert _niche_links("influencer", person_id) == niche_ids("food")


# --- migration 0002 on a database made by 0001 -----------------------------------------------


def _plain_0001_rows(n: int) -> None:
    """n influencers and n/10 brands as 0001 stored them: plaintext, dates as dates."""
    database.execute_sql(
        "INSERT INTO influencers (name, username, email, phone, date_of_birth) "
        "SELECT 'P ' || i, 'p' || i, 'P' || i || '@Example.com', '+9190' || lpad(i::text, 8, '0'), "
        "date '1990-01-01' + i %% 3000 FROM generate_series(1, %s) i",
        (n,),
    )
    database.execute_sql(
        "INSERT INTO brands (email, password, phone, brand_name, username, poc_name, pan_document) "
        "SELECT 'b' || i || '@x.io', 'h', '+9180' || lpad(i::text, 8, '0'), 'B' || i, 'b' || i, "
        "'Poc ' || i, 'https://d.example/' || i FROM generate_series(1, %s) i",
        (max(1, n // 10),),
    )
    database.execute_sql(
        "INSERT INTO otps (phone, otp, expires_at) VALUES ('+919000000007', 'h', now())"
    )


def _upgrade_and_back(n: int) -> float:
    with database.connection_context():
        try:
            return _check_upgrade_and_back(n)
        finally:
            if migrations.pending():  # leave the suite's database migrated whatever happened
                migrations.apply()


def _check_upgrade_and_back(n: int) -> float:
    # back to 0001 (the later migrations first), then forward again through 0002
    assert migrations.rollback(target="0002_data_protection")[-1] == "0002_data_protection"
    _plain_0001_rows(n)
    started = time.perf_counter()
    assert migrations.apply()[0] == "0002_data_protection"
    elapsed = time.perf_counter() - started
    email, phone, born, digest = database.execute_sql(
        "SELECT email, phone, date_of_birth, email_digest FROM influencers WHERE username = 'p7'"
    ).fetchone()
    assert crypto.decrypt("influencers", "email", email) == "P7@Example.com"
    assert crypto.decrypt("influencers", "phone", phone) == "+919000000007"
    assert crypto.decrypt("influencers", "date_of_birth", born) == "1990-01-08"
    assert digest == crypto.digest_of("email", "p7@example.com")
    left = database.execute_sql(
        "SELECT count(*) FROM influencers WHERE email NOT LIKE 'dev:%%' OR email_digest IS NULL"
    ).fetchone()[0]
    assert left == 0
    otp_phone = database.execute_sql("SELECT phone FROM otps").fetchone()[0]
    assert otp_phone == otp_key("+919000000007")
    poc = database.execute_sql("SELECT poc_name FROM brands WHERE username = 'b1'").fetchone()
    assert crypto.decrypt("brands", "poc_name", poc[0]) == "Poc 1"
    # ... and back: 0001's plaintext, types and indexes.
    assert migrations.rollback(target="0002_data_protection")[-1] == "0002_data_protection"
    row = database.execute_sql(
        "SELECT email, phone, date_of_birth FROM influencers WHERE username = 'p7'"
    ).fetchone()
    assert row == ("P7@Example.com", "+919000000007", dt.date(1990, 1, 8))
    assert database.execute_sql("SELECT to_regclass('influencers_email_lower')").fetchone()[0]
    assert migrations.apply()[0] == "0002_data_protection"
    return elapsed


def test_a_killed_0002_resumes_where_it_stopped(committed, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "m0002", migrations.MIGRATIONS_DIR / "0002_data_protection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.BATCH = 50

    class Killed(Exception):
        pass

    def kill(*args):
        raise Killed

    with database.connection_context():
        try:
            assert migrations.rollback(target="0002_data_protection")
            _plain_0001_rows(120)
            with monkeypatch.context() as patch, pytest.raises(Killed):
                patch.setattr(module.log, "info", kill)  # dies after its first batch
                module.up(None, database)
            done = database.execute_sql(
                "SELECT count(*) FROM influencers WHERE email_digest IS NOT NULL"
            ).fetchone()[0]
            assert done == 50
            assert migrations.apply()[0] == "0002_data_protection"  # the rerun finishes
            rows = database.execute_sql("SELECT username, email FROM influencers").fetchall()
            assert len(rows) == 120
            for username, email in rows:  # each encrypted exactly once
                assert (
                    crypto.decrypt("influencers", "email", email).lower()
                    == f"{username}@example.com"
                )
        finally:
            if migrations.pending():
                migrations.apply()


def test_migration_0002_encrypts_a_0001_database_and_its_rollback_decrypts(committed):
    _upgrade_and_back(300)


@pytest.mark.slow
def test_migration_0002_rate_encrypts_100k_accounts_well_under_a_minute(committed):
    # 20,000 + 2,000 rows keep the suite lean; 100,000 + 10,000 measured 16 s (README).
    elapsed = _upgrade_and_back(20_000)
    print(f"0002 encrypted 20,000 influencers and 2,000 brands in {elapsed:.1f} s")
    assert elapsed * 5 < 45
