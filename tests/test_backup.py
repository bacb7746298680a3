"""Backups: backup -> wipe -> restore gives back every table, row count and checksum alike.

Every dump has a manifest read in the dump's own snapshot; `verify` restores it into a
scratch database and compares; a corrupted dump or a wrong row fails it; backups are
private (0700 directory, 0600 files) and `keep` prunes the oldest.
"""

import json
import stat

import pytest

from cloutsy import backup
from cloutsy.db import database
from cloutsy.errors import BadRequest
from cloutsy.models import Brand, BrandNiche, Influencer, InfluencerNiche, Niche
from tests.helpers import ROOT

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


def _people(count, start=0):
    with database.connection_context(), database.atomic():
        for n in range(start, start + count):
            Influencer.create(
                name=f"V {n}", username=f"v{n}", email=f"v{n}@x.io", phone=f"+9198000{n:05d}"
            )


def test_every_dump_has_a_manifest_and_verifies(committed, settings, tmp_path):
    _people(12)
    path = backup.backup(settings, tmp_path / "backups")
    manifest = json.loads(backup.manifest_path(path).read_text())
    assert manifest["kind"] == "logical" and manifest["file"] == path.name
    assert manifest["tables"]["influencers"]["rows"] == 12
    assert manifest["tables"]["niches"]["rows"] > 0
    assert set(TABLES) <= set(manifest["tables"])  # every table of the schema, new ones too

    result = backup.verify(settings, path)
    assert result.ok, result.lines()
    assert len(result.lines()) == len(manifest["tables"])  # one line per table
    assert any(line.startswith("ok   influencers: 12 rows") for line in result.lines())
    with database.connection_context():
        scratch = database.execute_sql(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", ("%_verify_%",)
        ).fetchone()[0]
    assert scratch == 0  # the scratch database is gone


def test_verify_fails_on_a_corrupted_dump(committed, settings, tmp_path):
    _people(30)
    path = backup.backup(settings, tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroes over compressed table data
    path.write_bytes(bytes(data))
    result = backup.verify(settings, path)
    assert not result.ok
    assert result.lines()[-1].startswith(("FAIL restore failed", "DIFF"))


def test_verify_names_the_table_that_differs_from_the_manifest(committed, settings, tmp_path):
    _people(5)
    path = backup.backup(settings, tmp_path)
    manifest_file = backup.manifest_path(path)
    manifest = json.loads(manifest_file.read_text())
    manifest["tables"]["influencers"]["rows"] = 6
    manifest["tables"]["brands"]["checksum"] = "12345"
    manifest_file.write_text(json.dumps(manifest))
    result = backup.verify(settings, path)
    assert not result.ok
    lines = result.lines()
    assert "DIFF influencers: 5 rows, manifest says 6" in lines
    assert "DIFF brands: 0 rows, checksum differs from the manifest" in lines
    assert any(line.startswith("ok   niches:") for line in lines)


def test_backups_are_private_and_keep_prunes_the_oldest(committed, settings, tmp_path):
    directory = tmp_path / "backups"
    paths = [backup.backup(settings, directory, keep=2) for _ in range(3)]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    left = sorted(p.name for p in directory.iterdir())
    assert left == sorted(
        [paths[1].name, paths[2].name] + [backup.manifest_path(p).name for p in paths[1:]]
    )
    for name in left:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    assert backup.newest_backup(settings.with_overrides(backup_dir=directory)) == paths[2]


def _invoke(*args, env_extra):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, **env_extra}
    invoke = Path(sys.executable).parent / "invoke"
    return subprocess.run(
        [str(invoke), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )


def test_invoke_db_verify_prints_a_line_per_table_and_exits_1_on_a_difference(
    committed, settings, tmp_path
):
    _people(3)
    env = {"CLOUTSY_BACKUP_DIR": str(tmp_path), "POSTGRES_DB": settings.postgres_db}
    taken = _invoke("db.backup", "--keep", "1", env_extra=env)
    assert taken.returncode == 0, taken.stderr
    (dump,) = tmp_path.glob("*.dump")
    good = _invoke("db.verify", env_extra=env)  # the newest backup
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok   influencers: 3 rows" in good.stdout
    manifest = json.loads(backup.manifest_path(dump).read_text())
    manifest["tables"]["influencers"]["rows"] = 4
    backup.manifest_path(dump).write_text(json.dumps(manifest))
    bad = _invoke("db.verify", str(dump), env_extra=env)
    assert bad.returncode == 1
    assert "DIFF influencers: 3 rows, manifest says 4" in bad.stdout
    assert "verify failed" in bad.stderr and "Traceback" not in bad.stderr
