"""The analytics rollups (migration 0005) stay exactly equal to a full recount.

Every kind of write the service or an operator makes goes through the triggers: bulk
inserts, niche links added, removed and moved, accounts deactivated and reactivated,
verified, re-dated, brand profiles filled, accounts deleted (links cascade), a TRUNCATE.
After each, the summed deltas must equal what `cloutsy_rollups_rebuild()` recounts
from the tables, and a direct count from the tables themselves.
"""

from __future__ import annotations

from typing import Any

from cloutsy import analytics
from cloutsy.db import QueryCounter

KEYS = {
    "rollup_signups": "kind, day",
    "rollup_niches": "kind, niche_id",
    "rollup_niche_counts": "kind, niches",
    "rollup_niche_pairs": "kind, a, b",
}
VALUES = {
    "rollup_signups": "sum(signups), sum(verified), sum(profile_started), sum(profile_half), "
    "sum(profile_completed)",
    "rollup_niches": "sum(accounts)",
    "rollup_niche_counts": "sum(accounts)",
    "rollup_niche_pairs": "sum(accounts)",
}


def _plain(value: Any) -> Any:
    """Sums come back as Decimal: compare them as ints (keys stay as they are)."""
    return value if isinstance(value, str) or hasattr(value, "isoformat") else int(value)


def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup as (key..., summed values...) rows, zero rows left out."""
    out = {}
    for table, keys in KEYS.items():
        values = VALUES[table]
        nonzero = " OR ".join(f"{v} <> 0" for v in values.split(", "))
        rows = db.execute_sql(
            f"SELECT {keys}, {values} FROM {table} GROUP BY {keys} HAVING {nonzero} ORDER BY {keys}"
        ).fetchall()
        out[table] = [tuple(_plain(x) for x in r) for r in rows]
    return out


def recount(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """What a full recount gives, without keeping it (a savepoint rolled back)."""
    with db.atomic() as savepoint:
        db.execute_sql("SELECT cloutsy_rollups_rebuild()")
        counted = snapshot(db)
        savepoint.rollback()
    return counted


def direct_niche_counts(db: Any) -> list[tuple[Any, ...]]:
    """Active influencers per niche straight from the tables (no rollup involved)."""
    return [
        ("influencer", n, int(c))
        for n, c in db.execute_sql(
            "SELECT l.niche_id, count(*) FROM influencer_niches l JOIN influencers a "
            "ON a.id = l.influencer_id AND a.is_active GROUP BY 1 ORDER BY 1"
        ).fetchall()
    ]


def check(db: Any, step: str) -> dict[str, list[tuple[Any, ...]]]:
    kept = snapshot(db)
    assert kept == recount(db), f"rollups differ from a recount after: {step}"
    influencer_niches = [r for r in kept["rollup_niches"] if r[0] == "influencer"]
    assert influencer_niches == direct_niche_counts(db), step
    return kept


INSERT_INFLUENCERS = """
INSERT INTO influencers (name, username, email, phone, is_phone_verified, is_active, created_at)
SELECT 'person ' || i, 'rollup' || i, 'rollup' || i || '@example.com',
       '+9190' || lpad(i::text, 8, '0'), i %% 3 = 0, i %% 11 <> 0,
       timestamptz '2024-03-01 00:00+00' + make_interval(hours => i * 7)
  FROM generate_series(1, %(n)s) i
"""
INSERT_LINKS = """
INSERT INTO influencer_niches (influencer_id, niche_id)
SELECT a.id, n.id FROM influencers a JOIN niches n ON n.id <= 1 + a.id %% 4 + (a.id %% 3)
 WHERE a.username LIKE 'rollup%%'
"""
INSERT_BRANDS = """
INSERT INTO brands (email, password, phone, brand_name, username, is_phone_verified,
                    legal_entity_name, company_type, brand_bio, poc_name, poc_designation,
                    gst_document, created_at)
SELECT 'rb' || i || '@example.com', 'x', '+9191' || lpad(i::text, 8, '0'), 'Brand ' || i,
       'rb' || i, i %% 2 = 0,
       CASE WHEN i %% 2 = 0 THEN 'Legal ' || i END, CASE WHEN i %% 3 = 0 THEN 'llp' END,
       CASE WHEN i %% 4 = 0 THEN 'bio' END, CASE WHEN i %% 2 = 0 THEN 'Poc' END,
       CASE WHEN i %% 2 = 0 THEN 'Lead' END, CASE WHEN i %% 2 = 0 THEN 'https://x/gst' END,
       timestamptz '2024-03-02 00:00+00' + make_interval(hours => i * 13)
  FROM generate_series(1, 40) i
"""


def test_rollups_equal_a_full_recount_through_every_kind_of_write(db):
    before = check(db, "nothing yet")
    db.execute_sql(INSERT_INFLUENCERS, {"n": 120})
    db.execute_sql(INSERT_LINKS)
    db.execute_sql(INSERT_BRANDS)
    db.execute_sql(
        "INSERT INTO brand_niches (brand_id, niche_id) SELECT b.id, n.id FROM brands b "
        "JOIN niches n ON n.id IN (2, 3, 2 + b.id %% 5) WHERE b.username LIKE 'rb%%'"
    )
    grown = check(db, "bulk inserts")
    assert grown != before
    assert sum(r[2] for r in grown["rollup_signups"] if r[0] == "influencer") >= 120

    # One account at a time, as the API writes.
    row = db.execute_sql(
        "INSERT INTO influencers (name, username, email, phone) "
        "VALUES ('Solo', 'solo', 'solo@example.com', '+919999000001') RETURNING id"
    ).fetchone()
    for niche in (1, 5, 7):
        db.execute_sql(
            "INSERT INTO influencer_niches (influencer_id, niche_id) VALUES (%s, %s)",
            (row[0], niche),
        )
    check(db, "a sign-up with three niches, one link per statement")

    db.execute_sql("UPDATE influencers SET is_active = false WHERE username LIKE 'rollup%%5'")
    db.execute_sql("UPDATE influencers SET is_active = true WHERE username LIKE 'rollup%%11'")
    check(db, "deactivations and reactivations")
    db.execute_sql(
        "UPDATE influencers SET is_phone_verified = NOT is_phone_verified, "
        "created_at = created_at + interval '3 days' WHERE username LIKE 'rollup%%7'"
    )
    db.execute_sql("UPDATE influencers SET bio = 'no figure changes' WHERE username LIKE 'r%%'")
    check(db, "verification flips and re-dated sign-ups")

    db.execute_sql("DELETE FROM influencer_niches WHERE niche_id = 2 AND influencer_id %% 2 = 0")
    db.execute_sql(
        "UPDATE influencer_niches SET niche_id = 20 WHERE niche_id = 1 AND influencer_id %% 3 = 0"
    )
    db.execute_sql(  # links of deactivated accounts change too: they must not count
        "INSERT INTO influencer_niches (influencer_id, niche_id) SELECT id, 21 FROM influencers "
        "WHERE NOT is_active"
    )
    check(db, "links removed, moved to another niche, added to inactive accounts")

    db.execute_sql(
        "UPDATE brands SET pan_document = 'https://x/pan', incorporation_document = 'https://x/i', "
        "is_profile_completed = true WHERE id %% 4 = 0"
    )
    db.execute_sql("UPDATE brands SET brand_bio = '' WHERE id %% 5 = 0")
    check(db, "brand profiles filled and emptied")

    db.execute_sql("DELETE FROM influencers WHERE username LIKE 'rollup%%3'")
    db.execute_sql("DELETE FROM brands WHERE id %% 6 = 0")
    check(db, "accounts deleted (their links cascade)")

    db.execute_sql("SELECT cloutsy_rollups_compact()")
    compacted = check(db, "compaction")
    keys = db.execute_sql("SELECT count(*) FROM rollup_niches").fetchone()[0]
    assert keys == len(compacted["rollup_niches"])  # one row per key left

    db.execute_sql("TRUNCATE brand_niches")
    after = check(db, "TRUNCATE of a link table")
    assert not [r for r in after["rollup_niches"] if r[0] == "brand"]


def test_analytics_read_the_rollups_not_the_tables(db):
    """Figures move with a write at once; the functions read no account table."""
    db.execute_sql(INSERT_INFLUENCERS, {"n": 30})
    db.execute_sql(INSERT_LINKS)
    with QueryCounter(this_thread=True) as seen:
        per_niche = analytics.accounts_per_niche()
        analytics.niches_per_account()
        analytics.niche_cooccurrence()
        analytics.verification_funnel()
        analytics.signups("week")
    text = " ".join(sql for sql, _ in seen.statements)
    for table in ("influencers", "brands", "influencer_niches", "brand_niches"):
        assert f"FROM {table} " not in text and f"JOIN {table} " not in text, table
    counted = dict(direct := [(r[1], r[2]) for r in direct_niche_counts(db)])
    assert direct
    for row in per_niche.itertuples():
        assert row.influencers == counted.get(row.niche_id, 0)


def test_compaction_folds_the_deltas_and_keeps_every_sum(db):
    from cloutsy.services.purge import compact_rollups

    for n in range(3):  # three sign-ups on one day: three delta rows for one key
        db.execute_sql(
            "INSERT INTO influencers (name, username, is_active, is_phone_verified) "
            "VALUES (%s, %s, true, false)",
            (f"Fold {n}", f"fold{n}"),
        )
    before = snapshot(db)
    rows = db.execute_sql("SELECT count(*) FROM rollup_signups").fetchone()[0]
    keys = db.execute_sql("SELECT count(DISTINCT (kind, day)) FROM rollup_signups").fetchone()[0]
    assert rows > keys
    assert compact_rollups() >= rows - keys
    assert db.execute_sql("SELECT count(*) FROM rollup_signups").fetchone()[0] == keys
    assert snapshot(db) == before
