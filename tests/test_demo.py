"""seed_demo: deterministic, valid by the API's rules, and shaped like a real creator market."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from argon2 import PasswordHasher
from email_validator import validate_email

from cloutsy import crypto, demo
from cloutsy.demo import generate, load
from cloutsy.domains import COMPANY_TYPES, GENDERS
from cloutsy.errors import Invalid
from cloutsy.models import PII_COLUMNS, Influencer

ANCHOR = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a fixed "today" so reruns compare equal
SIZE = {"influencers": 2000, "brands": 200, "days": 60}
TABLES = ("influencers", "brands", "influencer_niches", "brand_niches")


@pytest.fixture
def anchored(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    monkeypatch.setattr(generate, "_anchor", lambda: ANCHOR)
    return ANCHOR


@pytest.fixture
def seeded(db, anchored):
    """The demo dataset inside the test transaction."""
    return demo.seed_demo(**SIZE, random_seed=7)


def scalar(db, sql: str, params=None):
    return db.execute_sql(sql, params).fetchone()[0]


def checksum(db) -> str:
    """Of every row, but with PII as its plaintext: ciphertext differs each time (random nonces)."""
    parts = []
    for table in TABLES:
        rows = db.execute_sql(f"SELECT to_jsonb(t) FROM {table} t ORDER BY t.id").fetchall()
        for (row,) in rows:
            for column in PII_COLUMNS.get(table, ()):
                row[column] = crypto.decrypt(table, column, row[column])
        parts.append(str(hash(repr(rows))))
    return "/".join(parts)


def opened(table: str, names, row) -> tuple:
    """`row` (values of `names`, then extras) with its PII columns decrypted."""
    pii = PII_COLUMNS[table]
    named = [
        crypto.decrypt(table, n, v) if n in pii else v for n, v in zip(names, row, strict=False)
    ]
    return (*named, *row[len(names) :])


def plain_rows(db, table: str, columns: str) -> list[tuple]:
    """`SELECT columns FROM table`, with the PII columns decrypted."""
    names = [c.strip() for c in columns.split(",")]
    rows = db.execute_sql(f"SELECT {columns} FROM {table}").fetchall()
    pii = PII_COLUMNS[table]
    return [
        tuple(
            crypto.decrypt(table, n, v) if n in pii else v for n, v in zip(names, row, strict=False)
        )
        for row in rows
    ]


def wipe(db) -> None:
    db.execute_sql("DELETE FROM brand_niches; DELETE FROM influencer_niches")
    db.execute_sql("DELETE FROM brands; DELETE FROM influencers")


def test_counts_match_the_result(db, seeded):
    assert seeded.influencers == scalar(db, "SELECT count(*) FROM influencers") == 2000
    assert seeded.brands == scalar(db, "SELECT count(*) FROM brands") == 200
    assert seeded.influencer_niches == scalar(db, "SELECT count(*) FROM influencer_niches")
    assert seeded.brand_niches == scalar(db, "SELECT count(*) FROM brand_niches")


def test_same_seed_on_an_empty_database_gives_the_same_rows(db, anchored):
    demo.seed_demo(**SIZE, random_seed=7)
    first = checksum(db)
    wipe(db)
    demo.seed_demo(**SIZE, random_seed=7)
    assert checksum(db) == first
    wipe(db)
    demo.seed_demo(**SIZE, random_seed=8)
    assert checksum(db) != first


def test_accounts_follow_the_api_rules(db, seeded):
    rows = plain_rows(
        db, "influencers", "username, email, phone, gender, date_of_birth, bio, profile_image"
    )
    oldest_allowed = ANCHOR.date().replace(year=ANCHOR.year - 13).isoformat()
    for username, email, phone, gender, born, bio, image in rows:
        assert re.fullmatch(r"[a-z0-9._]{3,30}", username)
        assert email == email.lower()
        assert re.fullmatch(r"\+91[6-9]\d{9}", phone)
        assert gender is None or gender in GENDERS
        assert born is None or born <= oldest_allowed
        assert bio is None or len(bio) <= 1000
        assert image is None or image.startswith("https://")
    for email in [r[1] for r in rows[:200:10]]:
        assert validate_email(email, check_deliverability=False).normalized == email

    brands = plain_rows(
        db,
        "brands",
        "username, email, phone, password, company_type, poc_contact_number, brand_bio, "
        "profile_image, incorporation_document, gst_document, pan_document, brand_email_id, "
        "poc_email_id",
    )
    password_hash = brands[0][3]
    assert password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(password_hash, demo.DEMO_PASSWORD)
    for username, email, phone, password, company, poc_phone, bio, *urls_and_emails in brands:
        assert re.fullmatch(r"[a-z0-9._]{3,30}", username)
        assert re.fullmatch(r"\+91[6-9]\d{9}", phone)
        assert password == password_hash  # hashed once, shared by every demo brand
        assert company is None or company in COMPANY_TYPES
        assert poc_phone is None or re.fullmatch(r"\+91[6-9]\d{9}", poc_phone)
        assert bio is None or len(bio) <= 1000
        *urls, brand_email, poc_email = urls_and_emails
        assert all(u is None or u.startswith("https://") for u in urls)
        for address in (email, brand_email, poc_email):
            if address is not None:
                assert validate_email(address, check_deliverability=False).normalized == address


def test_unique_values_and_timestamps(db, seeded):
    for table in ("influencers", "brands"):
        assert scalar(db, f"SELECT count(DISTINCT lower(username)) FROM {table}") == scalar(
            db, f"SELECT count(*) FROM {table}"
        )
        assert scalar(db, f"SELECT count(DISTINCT email_digest) FROM {table}") == scalar(
            db, f"SELECT count(*) FROM {table}"
        )
        low, high, bad = db.execute_sql(
            f"SELECT min(created_at), max(created_at), "
            f"count(*) FILTER (WHERE updated_at < created_at OR updated_at >= %s) FROM {table}",
            (ANCHOR,),
        ).fetchone()
        assert ANCHOR - dt.timedelta(days=60) <= low and high < ANCHOR
        assert bad == 0
    # No phone is shared, not even between an influencer and a brand (OTP finds one account).
    phones = "(SELECT phone_digest FROM influencers UNION ALL SELECT phone_digest FROM brands) p"
    assert scalar(db, f"SELECT count(DISTINCT phone_digest) FROM {phones}") == 2200


def test_profile_completed_exactly_when_every_field_is_filled(db, seeded):
    filled = " AND ".join(f"{f} IS NOT NULL" for f in demo.PROFILE_FIELDS)
    mismatched = scalar(db, f"SELECT count(*) FROM brands WHERE is_profile_completed <> ({filled})")
    assert mismatched == 0
    completed = scalar(db, "SELECT avg(is_profile_completed::int) FROM brands")
    assert 0.2 < completed < 0.7  # brands at every stage, not all or nothing
    stages = scalar(
        db,
        "SELECT count(DISTINCT num_nonnulls("
        + ", ".join(f"{f}::text" for f in demo.PROFILE_FIELDS)
        + ")) FROM brands",
    )
    assert stages >= 10


def test_about_seventy_percent_verified_and_a_few_deactivated(db, seeded):
    verified = scalar(db, "SELECT avg(is_phone_verified::int) FROM influencers")
    assert 0.65 <= verified <= 0.75
    brands_verified = scalar(db, "SELECT avg(is_phone_verified::int) FROM brands")
    assert 0.55 <= brands_verified <= 0.85
    inactive = scalar(db, "SELECT count(*) FROM influencers WHERE NOT is_active")
    assert 0 < inactive < 0.05 * 2000


def test_one_to_four_niches_per_account(db, seeded):
    for table, links, owner in (
        ("influencers", "influencer_niches", "influencer_id"),
        ("brands", "brand_niches", "brand_id"),
    ):
        low, high = db.execute_sql(
            f"SELECT min(c), max(c) FROM (SELECT count(l.id) AS c FROM {table} a "
            f"LEFT JOIN {links} l ON l.{owner} = a.id GROUP BY a.id) x"
        ).fetchone()
        assert (low, high) == (1, 4)


def test_niche_popularity_is_skewed(db, seeded):
    shares = [
        r[0]
        for r in db.execute_sql(
            "SELECT count(*)::float / sum(count(*)) OVER () FROM influencer_niches "
            "GROUP BY niche_id ORDER BY 1 DESC"
        ).fetchall()
    ]
    assert sum(shares[:3]) > 0.4  # a few niches hold most creators
    assert shares[0] > 5 * shares[len(shares) // 2]
    assert len(shares) >= 15  # yet the long tail is there


def test_signups_grow_with_weekly_seasonality(db, seeded):
    first, last = db.execute_sql(
        "SELECT count(*) FILTER (WHERE created_at < %(a)s - interval '40 days'), "
        "count(*) FILTER (WHERE created_at >= %(a)s - interval '20 days') FROM influencers",
        {"a": ANCHOR},
    ).fetchone()
    assert last > 1.5 * first
    weekend, weekday = db.execute_sql(
        "SELECT avg(n) FILTER (WHERE dow IN (0, 6)), avg(n) FILTER (WHERE dow NOT IN (0, 6)) "
        "FROM (SELECT extract(dow FROM created_at) AS dow, date_trunc('day', created_at) AS d, "
        "count(*) AS n FROM brands GROUP BY 1, 2) x"
    ).fetchone()
    assert weekday > weekend  # brands sign up at work


def test_append_continues_ids_and_sequences(db, anchored):
    demo.seed_demo(100, 10, 30, random_seed=1)
    demo.seed_demo(100, 10, 30, random_seed=2)
    assert scalar(db, "SELECT count(DISTINCT id) FROM influencers") == 200
    assert scalar(db, "SELECT max(id) FROM influencers") == 200
    created = Influencer.create(
        name="After Demo", username="after.demo", email="after@example.com", phone="+919999999999"
    )
    assert created.id == 201


def test_each_account_gets_its_niche_refs_though_the_load_skips_the_triggers(db, anchored):
    """The load turns the refs triggers off and rebuilds once (migration 0006): after a first
    load and an append, every account's kept niche JSON lists exactly its linked niches."""
    demo.seed_demo(80, 8, 30, random_seed=1)
    demo.seed_demo(80, 8, 30, random_seed=2)
    for table, links, owner, refs in (
        ("influencers", "influencer_niches", "influencer_id", "influencer_niche_refs"),
        ("brands", "brand_niches", "brand_id", "brand_niche_refs"),
    ):
        wrong = scalar(
            db,
            f"SELECT count(*) FROM {table} a LEFT JOIN {refs} r ON r.{owner} = a.id "
            "WHERE (SELECT coalesce(array_agg(l.niche_id ORDER BY l.niche_id), '{}') "
            f"FROM {links} l WHERE l.{owner} = a.id) IS DISTINCT FROM "
            "(SELECT coalesce(array_agg((e->>'id')::int), '{}') "
            "FROM json_array_elements(coalesce(r.niches, '[]')) e)",
        )
        assert (scalar(db, f"SELECT count(*) FROM {table}"), wrong) == (
            {"influencers": 160, "brands": 16}[table],
            0,
        )


def test_bulk_load_restores_every_index_and_foreign_key(db, anchored, monkeypatch):
    def schema():
        indexes = db.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        keys = db.execute_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' ORDER BY 1"
        ).fetchall()
        return indexes, keys

    before = schema()
    monkeypatch.setattr(load, "BULK_THRESHOLD", 100)  # take the drop-and-rebuild path
    steps = []
    demo.seed_demo(500, 100, 30, progress=lambda stage, done, total: steps.append(stage))
    assert schema() == before
    assert steps[0] == "generating" and {"influencers", "indexes", "statistics"} <= set(steps)


def test_rejects_impossible_sizes(db):
    with pytest.raises(Invalid, match="days"):
        demo.seed_demo(10, 1, 0)
    with pytest.raises(Invalid, match="influencers"):
        demo.seed_demo(-1, 1, 10)


def test_count_accounts(db, seeded):
    assert demo.count_accounts() == 2200


def test_one_side_may_be_empty(db, anchored):
    result = demo.seed_demo(0, 5, 10)
    assert (result.influencers, result.influencer_niches, result.brands) == (0, 0, 5)
    assert scalar(db, "SELECT count(*) FROM brands") == 5


def test_demo_accounts_pass_the_api_sign_up_validation(db, seeded):
    from cloutsy.schemas import BrandCreate, InfluencerCreate

    influencer_fields = (
        "name",
        "username",
        "email",
        "phone",
        "date_of_birth",
        "gender",
        "bio",
        "profile_image",
    )
    rows = db.execute_sql(
        f"SELECT {', '.join(influencer_fields)}, "
        "(SELECT array_agg(niche_id ORDER BY niche_id) FROM influencer_niches l "
        " WHERE l.influencer_id = a.id) FROM influencers a ORDER BY id LIMIT 300"
    ).fetchall()
    rows = [opened("influencers", influencer_fields, row) for row in rows]
    for row in rows:
        values = {k: v for k, v in zip(influencer_fields, row, strict=False) if v is not None}
        if "date_of_birth" in values:  # stored as encrypted ISO text
            values["date_of_birth"] = dt.date.fromisoformat(values["date_of_birth"])
        created = InfluencerCreate.model_validate({**values, "niche_ids": row[-1]})
        assert (created.username, created.email, created.phone) == (
            values["username"],
            values["email"],
            values["phone"],
        )
    brand_fields = ("email", "phone", "brand_name", "username", *demo.PROFILE_FIELDS)
    rows = db.execute_sql(
        f"SELECT {', '.join(brand_fields)}, "
        "(SELECT array_agg(niche_id ORDER BY niche_id) FROM brand_niches l "
        " WHERE l.brand_id = a.id) FROM brands a ORDER BY id"
    ).fetchall()
    rows = [opened("brands", brand_fields, row) for row in rows]
    for row in rows:
        values = {k: v for k, v in zip(brand_fields, row, strict=False) if v is not None}
        payload = {**values, "password": demo.DEMO_PASSWORD, "niche_ids": row[-1]}
        assert BrandCreate.model_validate(payload).email == values["email"]
