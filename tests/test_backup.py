"""Backups: backup -> wipe -> restore gives back every table, row count and checksum alike."""

import pytest

from cloutsy import backup
from cloutsy.db import database
from cloutsy.errors import BadRequest
from cloutsy.models import Brand, BrandNiche, Influencer, InfluencerNiche, Niche

TABLES = (
    "niches",
    "influencers",
    "brands",
    "influencer_niches",
    "brand_niches",
    "otps",
    "sessions",
)


def fingerprint():
    """Row count and an md5 of all rows, in id order, per table."""
    out = {}
    with database.connection_context():
        for table in TABLES:
            out[table] = database.execute_sql(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) "
                f"FROM {table} t"
            ).fetchone()
    return out


def test_backup_wipe_restore_round_trip(committed, settings, tmp_path):
    with database.connection_context(), database.atomic():
        for n in range(30):
            person = Influencer.create(
                name=f"P {n}",
                username=f"p{n}",
                email=f"p{n}@x.io",
                phone=f"+9197000{n:05d}",
                bio="naïve ☕ 'quotes'",
            )
            InfluencerNiche.create(influencer=person, niche=Niche.get(Niche.slug == "food"))
        brand = Brand.create(
            email="b@x.io", password="h", phone="+919600000000", brand_name="B", username="b"
        )
        BrandNiche.create(brand=brand, niche=Niche.get(Niche.slug == "travel"))
    before = fingerprint()
    assert before["influencers"][0] == 30

    path = backup.backup(settings, tmp_path)
    assert path.exists() and path.stat().st_size > 0
    assert path.name.startswith("cloutsy-") and path.suffix == ".dump"

    with database.connection_context():
        database.execute_sql(
            "TRUNCATE brand_niches, influencer_niches, brands, influencers CASCADE"
        )
    assert fingerprint()["influencers"][0] == 0

    backup.restore(settings, path)
    assert fingerprint() == before


def test_restore_of_a_missing_file_is_a_clear_error(pool, settings, tmp_path):
    with pytest.raises(BadRequest, match="no such backup file"):
        backup.restore(settings, tmp_path / "nope.dump")


def test_pg_dump_matches_the_server_major_version(pool):
    major = backup.server_major()
    tool = backup.find_tool("pg_dump", major)
    assert backup._version(tool) == major
