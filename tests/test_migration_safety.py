"""Safe migrations: squawk lints every migration; an index build waits, gives up, retries.

The lock test is the one CONTRACT §11 asks for: a migration adding an index to a table
with an open transaction waits, gives up after its `lock_timeout` without leaving
anything behind, and succeeds on retry, while reads and writes on that table go on.
"""

from __future__ import annotations

import textwrap
import time

import psycopg2
import pytest

from cloutsy import migrations
from cloutsy.db import connection_url, database
from tests.helpers import Background, lock_waiters, wait_until

PROBE_INDEX = """
atomic = False

UP = ["CREATE INDEX CONCURRENTLY IF NOT EXISTS lock_probe_v ON lock_probe (v)"]
DOWN = ["DROP INDEX CONCURRENTLY IF EXISTS lock_probe_v"]


def up(migrator, db):
    for statement in UP:
        db.execute_sql(statement)


def down(migrator, db):
    for statement in DOWN:
        db.execute_sql(statement)
"""

PROBE_COLUMN = """
UP = ["ALTER TABLE lock_probe ADD COLUMN IF NOT EXISTS w text"]


def up(migrator, db):
    for statement in UP:
        db.execute_sql(statement)


def down(migrator, db):
    db.execute_sql("ALTER TABLE lock_probe DROP COLUMN IF EXISTS w")
"""


def test_every_migration_passes_squawk():
    results = migrations.lint()
    assert [r.name for r in results][0] == "0001_initial"
    failing = {r.name: r.report for r in results if not r.ok}
    assert not failing, failing


def test_squawk_fails_an_unsafe_migration(tmp_path):
    bad = tmp_path / "0099_unsafe.py"
    bad.write_text(
        textwrap.dedent("""
        def up(migrator, db):
            db.execute_sql("CREATE INDEX influencers_bio ON influencers (bio)")
            db.execute_sql("ALTER TABLE brands ADD COLUMN tier integer NOT NULL")
        """)
    )
    (result,) = migrations.lint([bad])
    assert not result.ok
    assert "require-concurrent-index-creation" in result.report
    assert "adding-required-field" in result.report


def test_render_shows_the_runners_timeouts_and_every_statement(tmp_path):
    path = tmp_path / "0001_probe_index.py"
    path.write_text(PROBE_INDEX)
    rendered = migrations.render(path)
    assert rendered.atomic is False
    lines = rendered.sql.splitlines()
    assert lines[0] == f"SET lock_timeout = '{migrations.LOCK_TIMEOUT_MS}ms';"
    assert lines[1] == "SET statement_timeout = 0;"
    assert lines[2] == "CREATE INDEX CONCURRENTLY IF NOT EXISTS lock_probe_v ON lock_probe (v);"


def test_migrate_create_writes_the_safe_style(tmp_path):
    assert migrations._safe_statement('CREATE INDEX "t_c" ON "t" ("c")') == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "t_c" ON "t" ("c")'
    )
    assert migrations._safe_statement("CREATE UNIQUE INDEX IF NOT EXISTS u ON t (c)") == (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON t (c)"
    )
    skeleton = tmp_path / "0002_skeleton.py"
    skeleton.write_text(migrations.safe_body("add a thing", None))
    (result,) = migrations.lint([skeleton])
    assert result.ok, result.report
    assert "atomic = True" in skeleton.read_text()


@pytest.fixture
def probe_table(committed, settings):
    """A committed table `lock_probe` with rows, plus a raw connection factory; dropped after."""
    with database.connection_context():
        database.execute_sql("DROP TABLE IF EXISTS lock_probe, probe_migration")
        database.execute_sql("CREATE TABLE lock_probe (id serial PRIMARY KEY, v integer)")
        database.execute_sql("INSERT INTO lock_probe (v) SELECT g FROM generate_series(1, 500) g")
    uri = connection_url(settings)
    opened = []

    def connect():
        conn = psycopg2.connect(uri)
        opened.append(conn)
        return conn

    connect.uri = uri
    yield connect
    for conn in opened:
        conn.close()
    with database.connection_context():
        database.execute_sql("DROP TABLE IF EXISTS lock_probe, probe_migration")


def _apply_in_thread(directory, **kwargs) -> Background:
    def run():
        with database.connection_context():
            return migrations.apply(directory=directory, table_name="probe_migration", **kwargs)

    return Background(run)


def _waiting_for_the_lock(uri: str) -> None:
    wait_until(lambda: lock_waiters(uri) >= 1, what="the migration to wait for its lock")


def _index_state():
    with database.connection_context():
        return database.execute_sql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'lock_probe_v'"
        ).fetchall()


def _reads_and_writes(conn, rounds: int) -> list[float]:
    """Insert and read on lock_probe `rounds` times; return each round trip's duration."""
    conn.autocommit = True
    timings = []
    with conn.cursor() as cur:
        for _ in range(rounds):
            started = time.monotonic()
            cur.execute("INSERT INTO lock_probe (v) VALUES (1) RETURNING id")
            (new_id,) = cur.fetchone()
            cur.execute("SELECT v FROM lock_probe WHERE id = %s", (new_id,))
            assert cur.fetchone() == (1,)
            timings.append(time.monotonic() - started)
    return timings


def test_index_migration_waits_gives_up_cleanly_and_succeeds_on_retry(probe_table, tmp_path):
    (tmp_path / "0001_probe_index.py").write_text(PROBE_INDEX)
    blocker = probe_table()
    with blocker.cursor() as cur:  # an open transaction that wrote to the table
        cur.execute("UPDATE lock_probe SET v = v WHERE id = 1")

    build = _apply_in_thread(tmp_path, lock_timeout_ms=600, attempts=1)
    _waiting_for_the_lock(probe_table.uri)
    timings = _reads_and_writes(probe_table(), 10)  # while the build waits
    with pytest.raises(migrations.LockTimeout, match="lock_probe_v is dropped by the next run"):
        build.result()
    waited = build.finished - build.started
    assert 0.5 <= waited < 4, waited  # the subject is the 600 ms lock_timeout
    assert max(timings) < 0.3, timings
    assert _index_state() in ([], [(False,)])  # at most the failed build's INVALID index
    with database.connection_context():
        assert migrations.runner(tmp_path, "probe_migration").applied() == {}

    # Retry with backoff; the long transaction ends during the second wait.
    progress: list[str] = []
    build = _apply_in_thread(
        tmp_path, lock_timeout_ms=600, attempts=4, backoff_s=0.2, progress=progress.append
    )
    wait_until(lambda: progress, what="the first attempt to give up")
    _waiting_for_the_lock(probe_table.uri)  # the second attempt
    blocker.commit()
    assert build.result(15) == ["0001_probe_index"]
    assert progress and "attempt 1/4" in progress[0]
    assert _index_state() == [(True,)]


def test_an_atomic_migration_gives_up_and_rolls_back(probe_table, tmp_path):
    (tmp_path / "0001_probe_column.py").write_text(PROBE_COLUMN)
    blocker = probe_table()
    with blocker.cursor() as cur:  # a reader in a long transaction: ALTER must wait for it
        cur.execute("SELECT count(*) FROM lock_probe")
    with pytest.raises(migrations.LockTimeout):
        _apply_in_thread(tmp_path, lock_timeout_ms=400, attempts=2, backoff_s=0.1).result(10)
    with database.connection_context():
        columns = [c.name for c in database.get_columns("lock_probe")]
        assert "w" not in columns
        assert migrations.runner(tmp_path, "probe_migration").applied() == {}
    blocker.rollback()
    applied = _apply_in_thread(tmp_path, lock_timeout_ms=400, attempts=1).result(10)
    assert applied == ["0001_probe_column"]


def test_production_takes_a_logical_backup_before_migrating(probe_table, settings, tmp_path):
    migrations_dir = tmp_path / "migrations"
    migrations_dir.mkdir()
    (migrations_dir / "0001_probe_index.py").write_text(PROBE_INDEX)
    options = {"directory": migrations_dir, "table_name": "probe_migration"}
    backups = tmp_path / "backups"
    production = settings.with_overrides(env="production", backup_dir=backups)
    with database.connection_context():
        taken, applied = migrations.migrate(production, backup=False, **options)
        assert taken is None and applied == ["0001_probe_index"]  # --no-backup
        database.execute_sql("DELETE FROM probe_migration")
        database.execute_sql("DROP INDEX lock_probe_v")

        taken, applied = migrations.migrate(production, **options)
        assert applied == ["0001_probe_index"]
        assert taken is not None and taken.parent == backups and taken.stat().st_size > 0
        assert migrations.migrate(production, **options) == (None, [])  # nothing pending

        database.execute_sql("DELETE FROM probe_migration")
        database.execute_sql("DROP INDEX lock_probe_v")
        taken, _ = migrations.migrate(settings.with_overrides(backup_dir=backups), **options)
        assert taken is None  # development: no backup
    assert len(list(backups.glob("*.dump"))) == 1


def test_migrate_create_turns_a_model_change_into_a_safe_migration(probe_table, tmp_path):
    from peewee import AutoField, IntegerField, Model, TextField
    from playhouse.schema_diff import diff_models

    class LockProbe(Model):
        id = AutoField()
        v = IntegerField(null=True)
        note = TextField(null=True, index=True)  # the change: a column with an index

        class Meta:
            table_name = "lock_probe"

    with database.connection_context():
        diff = diff_models(database.obj, [LockProbe])
    path = tmp_path / "0001_probe_note.py"
    path.write_text(migrations.safe_body("add lock_probe.note", diff))
    body = path.read_text()
    assert "atomic = False" in body
    assert 'ADD COLUMN IF NOT EXISTS "note" TEXT' in body
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in body
    (result,) = migrations.lint([path])
    assert result.ok, result.report

    with database.connection_context():
        assert migrations.apply(directory=tmp_path, table_name="probe_migration") == [path.stem]
        assert "note" in [c.name for c in database.get_columns("lock_probe")]
        assert migrations.runner(tmp_path, "probe_migration").down() == [path.stem]
        assert "note" not in [c.name for c in database.get_columns("lock_probe")]
        assert not database.get_indexes("lock_probe")[1:]  # only the primary key is left


BATCHED = """
from peewee import TextField

atomic = False


def up(migrator, db):
    db.execute_sql("ALTER TABLE influencers ADD COLUMN IF NOT EXISTS email_digest text")
    while True:  # batches, each in its own transaction
        with db.atomic():
            rows = db.execute_sql(
                "SELECT id FROM influencers WHERE email_digest IS NULL LIMIT %s", (500,)
            ).fetchall()
            if not rows:
                break
    migrator.migrate(migrator.add_column("brands", "tier", TextField(null=True)))


def down(migrator, db):
    pass
"""


def test_render_follows_batches_and_peewee_migrator_operations(tmp_path):
    path = tmp_path / "0002_batched.py"
    path.write_text(BATCHED)
    lines = migrations.render(path).sql.splitlines()[2:]
    assert lines == [
        "ALTER TABLE influencers ADD COLUMN IF NOT EXISTS email_digest text;",
        "BEGIN;",
        "SELECT id FROM influencers WHERE email_digest IS NULL LIMIT 500;",
        "COMMIT;",
        'ALTER TABLE "brands" ADD COLUMN "tier" TEXT;',
    ]
    (result,) = migrations.lint([path])
    # Outside a transaction a retried migration runs again from the top: it must be idempotent.
    assert not result.ok and "prefer-robust-stmts" in result.report
    assert result.report.count("warning:") == 1 and "sql:6:" in result.report  # the migrator one
