"""The hand-made dataset that the analytics and storage tests check exact numbers against.

Five influencers and three brands signed up in January and February 2024 (2024-01-01
is a Monday), one of each deactivated, one influencer with no niche:

    i1 2024-01-01 10:00 verified    fashion, beauty
    i2 2024-01-01 23:00             fashion
    i3 2024-01-16 12:00 verified    fashion, beauty, travel
    i4 2024-02-01 09:00 inactive    beauty
    i5 2024-02-02 18:00 verified    (none)
    b1 2024-01-02 08:00 verified    fashion          all 12 profile fields
    b2 2024-01-17 15:00             beauty, travel   7 fields
    b3 2024-02-06 11:00 verified    fashion          no fields, inactive

The `data` fixture inserts it inside the test's transaction (registered in conftest).
"""

from __future__ import annotations

import datetime as dt

import pytest

from cloutsy.demo import PROFILE_FIELDS

UTC = dt.UTC


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


INFLUENCERS = [
    # id, created, verified, active, niche slugs
    (1, "2024-01-01 10:00", True, True, ("fashion", "beauty")),
    (2, "2024-01-01 23:00", False, True, ("fashion",)),
    (3, "2024-01-16 12:00", True, True, ("fashion", "beauty", "travel")),
    (4, "2024-02-01 09:00", False, False, ("beauty",)),
    (5, "2024-02-02 18:00", True, True, ()),
]
BRANDS = [
    # id, created, verified, active, filled profile fields, niche slugs
    (1, "2024-01-02 08:00", True, True, 12, ("fashion",)),
    (2, "2024-01-17 15:00", False, True, 7, ("beauty", "travel")),
    (3, "2024-02-06 11:00", True, False, 0, ("fashion",)),
]


@pytest.fixture
def data(db):
    """The dataset above, inside the test's transaction."""
    niche = dict(db.execute_sql("SELECT slug, id FROM niches").fetchall())
    for i, created, verified, active, slugs in INFLUENCERS:
        db.execute_sql(
            "INSERT INTO influencers (id, name, username, email, phone, is_phone_verified, "
            "is_active, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                i,
                f"Creator {i}",
                f"creator{i}",
                f"c{i}@example.com",
                f"+9170000000{i:02d}",
                verified,
                active,
                ts(created),
                ts(created),
            ),
        )
        for slug in slugs:
            db.execute_sql(
                "INSERT INTO influencer_niches (influencer_id, niche_id) VALUES (%s, %s)",
                (i, niche[slug]),
            )
    for i, created, verified, active, filled, slugs in BRANDS:
        profile = {f: ("x" if n < filled else None) for n, f in enumerate(PROFILE_FIELDS)}
        profile["company_type"] = "llp" if profile["company_type"] else None
        columns = ", ".join(profile)
        db.execute_sql(
            "INSERT INTO brands (id, email, password, phone, is_phone_verified, brand_name, "
            f"username, is_profile_completed, is_active, created_at, updated_at, {columns}) "
            f"VALUES (%s, %s, 'hash', %s, %s, %s, %s, %s, %s, %s, %s{', %s' * len(profile)})",
            (
                i,
                f"b{i}@example.com",
                f"+9180000000{i:02d}",
                verified,
                f"Brand {i}",
                f"brand{i}",
                filled == 12,
                active,
                ts(created),
                ts(created),
                *profile.values(),
            ),
        )
        for slug in slugs:
            db.execute_sql(
                "INSERT INTO brand_niches (brand_id, niche_id) VALUES (%s, %s)", (i, niche[slug])
            )
    for table in ("influencers", "brands"):  # explicit ids: later inserts must not collide
        seq = f"pg_get_serial_sequence('{table}', 'id')"
        db.execute_sql(
            f"SELECT setval({seq}, greatest((SELECT max(id) FROM {table}), nextval({seq})))"
        )
    return niche
