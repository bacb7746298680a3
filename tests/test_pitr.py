"""Point-in-time recovery and restore drills on real servers (slow).

On a throwaway embedded PostgreSQL 16 and on a throwaway Debian PostgreSQL 15 cluster
(`cloutsy.clusters`, under the worktree, on a free port; never the shared server): take
a base backup, write A, note T, write B, restore to T — A is there, B is not, and the
service (the real WSGI app) serves from the restored cluster. Then the
drills: the base backup and a dump verify against their manifests, and a corrupted one
of each fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloutsy import backup, catalogue, embedded, migrations, pitr
from cloutsy.clusters import Cluster
from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.db import database, init_database
from cloutsy.models import Influencer

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def pointed_at(settings: Settings) -> Iterator[None]:
    """The `database` proxy on `settings`' server for the block, then back on the suite's."""
    previous = database.obj
    try:
        # As the migrator (it migrates the schema first); the embedded app role may not.
        init_database(settings, purpose="migrate")
        yield
    finally:
        if database.obj is not previous:
            database.obj.close_all()
        database.initialize(previous)


def _write(username: str) -> int:
    with database.connection_context(), database.atomic():
        person = Influencer.create(
            name=username,
            username=username,
            email=f"{username}@x.io",
            phone="+919811111111" if username.endswith("a") else "+919822222222",
        )
    return int(person.id)


def _server_now() -> dt.datetime:
    with database.connection_context():
        return database.execute_sql("SELECT now()").fetchone()[0]


def check_base_retention(settings: Settings, first: Path) -> None:
    """--keep 1: the older base backup goes, and so does the WAL only it needed."""
    newest = pitr.base_backup(settings, keep=1)
    assert pitr.base_backups(settings) == [newest] and not first.exists()
    start = json.loads((newest / "manifest.json").read_text())["wal_start_file"]
    segments = [p.name for p in pitr.wal_dir(settings).iterdir() if len(p.name) == 24]
    assert segments and min(segments) >= start, (start, sorted(segments)[:3])
    for path in settings.backup_dir.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def pitr_round_trip(settings: Settings, retention: bool = False) -> None:
    """Base backup, A, T, B, restore to T, then serve and check; then the drills."""
    with pointed_at(settings):
        with database.connection_context():
            migrations.apply()
            catalogue.seed_niches()
        base = pitr.base_backup(settings)
        assert stat.S_IMODE(settings.backup_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((base / "manifest.json").stat().st_mode) == 0o600

        # The subject is a point in time: T must fall strictly between A's and B's commits,
        # so the clock has to move on in between (these sleeps are the test, not a wait).
        a = _write("pitr_a")
        time.sleep(0.2)
        moment = _server_now()
        time.sleep(0.2)
        b = _write("pitr_b")

        asked = []
        before = pitr.restore_to(settings, moment, lambda q: asked.append(q) or True)
        assert asked and "swap in" in asked[0]
        assert before.is_dir()

    from webtest import TestApp

    from cloutsy.api import create_app

    with pointed_at(settings):
        app = TestApp(create_app(settings))
        assert app.get(f"/influencers/{a}").json["username"] == "pitr_a"
        assert app.get(f"/influencers/{b}", status=404).json["error"]["code"] == "not_found"
        # The restored server takes writes and archives them on its new timeline.
        _write("pitr_c")

        # Drills: the base backup verifies; a corrupted copy fails.
        good = backup.verify(settings, base)
        assert good.ok, good.lines()
        assert any(line.startswith("ok   influencers: 0 rows") for line in good.lines())
        victim = max(
            (p for p in (base / "data" / "base").rglob("*") if p.is_file() and p.name.isdigit()),
            key=lambda p: p.stat().st_size,
        )
        with victim.open("r+b") as handle:
            handle.write(b"\xff" * 16)
        bad = backup.verify(settings, base)
        assert not bad.ok and "restore failed" in bad.lines()[-1], bad.lines()

        dump = backup.backup(settings)
        assert backup.verify(settings, dump).ok
        data = bytearray(dump.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        dump.write_bytes(bytes(data))
        assert not backup.verify(settings, dump).ok
        if retention:
            check_base_retention(settings, base)


def test_pitr_on_the_embedded_server():
    base = Path(tempfile.mkdtemp(prefix="cloutsy-pitr-"))
    settings = Settings(
        **{
            **_defaults(),
            "data_dir": base,
            "backup_dir": base / "backups",
            "postgres_db": "cloutsy_pitr",
        }
    )
    try:
        pitr_round_trip(settings)
    finally:
        with contextlib.suppress(Exception):
            embedded.stop(base / "pgdata", "immediate")
        pitr._forget_embedded(base / "pgdata")
        shutil.rmtree(base, ignore_errors=True)


def _defaults() -> dict:
    from dataclasses import asdict

    from cloutsy.config import load_settings

    fields = asdict(load_settings({"CLOUTSY_SECRET_KEY": "test-secret-key-0123456789abcdef"}))
    return fields


@pytest.fixture
def pg15_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL 15 cluster under the worktree, on a free port; removed after."""
    root = PROJECT_ROOT / ".cloutsy"
    root.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="pg15-pitr-", dir=root))
    cluster = Cluster.create(base / "data", 15, progress=lambda _: None)
    try:
        yield cluster
    finally:
        cluster.remove()


def test_pitr_on_a_postgresql_15_cluster(pg15_cluster):
    pgdata = pg15_cluster.datadir
    url = pg15_cluster.url("i15_pitr")
    embedded.ensure_database(pg15_cluster.url(), "i15_pitr")
    settings = Settings(
        **{
            **_defaults(),
            "database_url": url,
            "data_dir": pgdata.parent,
            "backup_dir": pgdata.parent / "backups",
            "server_pgdata": pgdata,
        }
    )
    pitr_round_trip(settings, retention=True)
