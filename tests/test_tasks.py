"""What a newcomer meets first: bad input, consent, a taken port, the embedded server.

Each task runs as a user runs it (`python -m invoke ...` in a subprocess) and must fail
with one line and a non-zero exit, never a traceback, before any side effect.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from invoke import Exit

from cloutsy import backup, catalogue, embedded, migrations, reports
from cloutsy.bench.load import parse_wrk
from cloutsy.config import load_settings
from cloutsy.db import database, init_database, wait_for_database
from cloutsy.errors import TaskError, Unavailable
from cloutsy.models import Influencer
from tests.helpers import ROOT, wait_until

# Nothing listens on port 1: a task that connected before checking its input would
# fail on the connection (after retrying) instead of naming the bad argument at once.
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/i17_nowhere"


def run_task(*args: str, stdin=subprocess.DEVNULL, timeout: float = 120, **env: str):
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_failure(result: subprocess.CompletedProcess) -> str:
    """The single line a failed task printed (stdout and stderr together)."""
    text = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    assert len(text.splitlines()) == 1, text
    return text


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve", "--port", "abc"], {}, "error: --port must be a whole number, got 'abc'"),
        (["serve", "--port", "70000"], {}, "error: --port must be between 1 and 65535, got 70000"),
        (["serve", "--workers", "0"], {}, "error: --workers must be between 1 and 256, got 0"),
        (
            ["serve"],
            {"CLOUTSY_PORT": "99999"},
            "configuration error: CLOUTSY_PORT must be between 1 and 65535, got 99999",
        ),
        (
            ["serve"],
            {"POSTGRES_POOL_MAX": "many"},
            "configuration error: POSTGRES_POOL_MAX must be a whole number, got 'many'",
        ),
        (
            ["seed.demo", "--influencers", "abc"],
            {},
            "error: --influencers must be a whole number, got 'abc'",
        ),
        (
            ["seed.demo", "--influencers", "-5"],
            {},
            "error: --influencers must be between 0 and 10000000, got -5",
        ),
        (["seed.demo", "--days", "0"], {}, "error: --days must be between 1 and 3650, got 0"),
        (["loadtest", "--users", "x"], {}, "error: --users must be a whole number, got 'x'"),
        (["bench", "--rounds", "-1"], {}, "error: --rounds must be between 1 and 100, got -1"),
    ],
)
def test_a_bad_argument_or_setting_is_one_line_before_any_side_effect(args, env, expected):
    started = time.monotonic()
    result = run_task(*args, DATABASE_URL=UNREACHABLE, **env)
    assert one_line_failure(result) == expected
    assert "serving on" not in result.stdout
    # Refused before trying the (unreachable) database, which would retry for 15-30 s:
    # a duration is the subject here.
    assert time.monotonic() - started < 10


def test_connection_retries_name_host_and_database_once(pool, caplog):
    settings = load_settings({"DATABASE_URL": UNREACHABLE, "CLOUTSY_SECRET_KEY": "x" * 20})
    try:
        unreachable = init_database(settings)
        with (
            caplog.at_level(logging.INFO, logger="cloutsy.db"),
            pytest.raises(Unavailable) as failure,
        ):
            wait_for_database(timeout=1.5)
    finally:
        unreachable.close_all()
        database.initialize(pool)  # back to the suite's pool, the very same object
    lines = [r.getMessage() for r in caplog.records if r.name == "cloutsy.db"]
    assert lines == ["database i17_nowhere on 127.0.0.1:1 not ready; retrying for up to 2 s"]
    assert failure.value.message.startswith(
        "database i17_nowhere on 127.0.0.1:1 not reachable after 2 s:"
    )


def test_serve_refuses_a_port_something_listens_on():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = run_task("serve", "--port", str(port), DATABASE_URL=UNREACHABLE)
    line = one_line_failure(result)
    assert line == (
        f"error: 127.0.0.1:{port} is already in use by pid {os.getpid()} "
        f"({Path(f'/proc/{os.getpid()}/comm').read_text().strip()}); stop that server or pick "
        "another port (invoke serve --port N, or CLOUTSY_PORT)"
    )


# --- migrate.rollback asks first -------------------------------------------------------------


@pytest.fixture
def restored_schema(committed):
    """The suite's schema, migrated and seeded again after a test that rolls it back."""
    with committed.connection_context():
        Influencer.create(
            name="Kept", username="kept.one", email="k@example.com", phone="+919800000001"
        )
    yield committed
    with committed.connection_context():
        migrations.apply()
        catalogue.seed_niches()


def _tables() -> list[str]:
    with database.connection_context():
        return database.get_tables()


def _latest() -> str:
    """The migration `migrate.rollback` reverts by default: the newest applied one."""
    with database.connection_context():
        return [m.name for m in migrations.status() if m.applied][-1]


def _dropped(lines: list[str]) -> dict[str, int]:
    """Table -> row count, from the preview's `drop table T (N rows)` lines."""
    found = {}
    for line in lines:
        if line.startswith("drop table "):
            name, _, count = line.removeprefix("drop table ").partition(" (")
            found[name] = int(count.split()[0].replace(",", ""))
    return found


def _row_counts(tables) -> dict[str, int]:
    with database.connection_context():
        return {
            t: database.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables
        }


def test_rollback_without_a_terminal_shows_what_it_would_drop_and_refuses(restored_schema):
    latest = _latest()
    result = run_task("migrate.rollback")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"revert: {latest}"
    dropped = _dropped(lines)
    assert dropped and dropped == _row_counts(dropped)  # each table named with its rows
    assert result.stderr.strip().splitlines()[-1] == (
        "error: refusing to roll back without consent (no terminal to ask; pass --yes)"
    )
    assert set(dropped) <= set(_tables())  # nothing dropped


def test_rollback_on_a_terminal_asks_and_no_keeps_everything(restored_schema):
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "invoke", "migrate.rollback"],
            cwd=ROOT,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Answer once the question is on screen.
        seen = ""
        deadline = time.monotonic() + 60
        while "[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                seen += os.read(process.stdout.fileno(), 4096).decode()
        assert "[y/N]" in seen, seen
        os.write(master, b"n\n")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert process.returncode == 1
    dropped = _dropped(seen.splitlines())
    assert dropped, seen
    assert "Revert 1 migration(s)" in seen
    assert err.strip().splitlines()[-1] == "cancelled"
    assert set(dropped) <= set(_tables())


def test_rollback_with_yes_in_production_takes_a_backup_first(restored_schema, settings):
    import base64

    from cloutsy.config import DEV_DATA_KEY, DEV_LOOKUP_KEY
    from cloutsy.db import connection_url

    latest = _latest()
    before = set((ROOT / "backups").glob("*.dump")) if (ROOT / "backups").exists() else set()
    production = {
        "CLOUTSY_ENV": "production",
        # Production refuses the embedded default: name the same server by URL.
        "DATABASE_URL": connection_url(settings, "admin"),
        "CLOUTSY_SECRET_KEY": "x" * 32,
        "CLOUTSY_DATA_KEYS": "dev:" + base64.b64encode(DEV_DATA_KEY).decode(),
        "CLOUTSY_LOOKUP_KEY": base64.b64encode(DEV_LOOKUP_KEY).decode(),
    }
    result = run_task("migrate.rollback", "--yes", **production)
    made = set((ROOT / "backups").glob("*.dump")) - before
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        dropped = _dropped(lines)
        assert dropped
        assert len(made) == 1
        backup_line = next(line for line in lines if line.startswith("backup written first:"))
        assert lines.index(backup_line) < lines.index(f"reverted: {latest}")
        assert next(iter(made)).stat().st_size > 0
        assert not set(dropped) & set(_tables())
    finally:
        for path in made:
            path.unlink()


ADD_COLUMN = """
def up(migrator, db):
    db.execute_sql("ALTER TABLE influencers ADD COLUMN nickname text")

def down(migrator, db):
    db.execute_sql("ALTER TABLE influencers DROP COLUMN nickname")
"""
OUTSIDE = """
atomic = False

def up(migrator, db):
    db.execute_sql("CREATE INDEX influencers_i17_probe ON influencers (name)")

def down(migrator, db):
    db.execute_sql("DROP INDEX influencers_i17_probe")
"""


@pytest.fixture
def extra_migrations(db, tmp_path, monkeypatch):
    """The real migrations plus two more in a scratch folder (all inside the test transaction)."""
    from playhouse.migrations import Runner

    for path in migrations.MIGRATIONS_DIR.glob("[0-9]*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "0900_i17_add_nickname.py").write_text(ADD_COLUMN)
    monkeypatch.setattr(migrations, "runner", lambda *_: Runner(db, str(tmp_path)))
    Influencer.create(name="A", username="a.one", email="a@example.com", phone="+919800000002")
    migrations.apply()
    db.execute_sql("UPDATE influencers SET nickname = 'Ace'")
    return tmp_path


def test_the_rollback_preview_counts_a_dropped_columns_values_and_changes_nothing(
    extra_migrations, db
):
    preview = migrations.preview_rollback()
    assert preview.lines() == [
        "revert: 0900_i17_add_nickname",
        "drop column influencers.nickname (1 values)",
    ]
    assert preview.rows == 1
    assert "0900_i17_add_nickname" not in migrations.pending()
    nickname = db.execute_sql("SELECT nickname FROM influencers").fetchone()[0]
    assert nickname == "Ace"


def test_a_migration_outside_a_transaction_is_not_run_for_a_preview(extra_migrations, db):
    (extra_migrations / "0901_i17_outside.py").write_text(OUTSIDE)
    migrations.apply()
    preview = migrations.preview_rollback()
    assert preview.lines() == [
        "revert: 0901_i17_outside",
        "(what it drops could not be previewed: 0901_i17_outside runs outside a transaction)",
    ]
    index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'influencers_i17_probe'"
    assert db.execute_sql(index).fetchone()[0] == 1  # not dropped by the preview


# --- the embedded server: start, stop, status -------------------------------------------------


@pytest.mark.slow
def test_db_stop_works_with_stale_pgserver_bookkeeping(throwaway_server):
    pgdata = throwaway_server
    env = {"CLOUTSY_DATA_DIR": str(pgdata.parent), "DATABASE_URL": "", "POSTGRES_HOST": ""}
    pid = int(embedded.postmaster(pgdata)["pid"])
    # What a crashed process leaves behind: pids that will never release their handle.
    (pgdata / embedded.HANDLE_PIDS).write_text(json.dumps([999_998, 999_999]))

    status = run_task("db.status", **env)
    assert status.returncode == 0, status.stderr
    assert f"data dir: {pgdata}" in status.stdout
    assert f"state:    running, pid {pid}" in status.stdout
    assert f"socket:   {pgdata}/.s.PGSQL." in status.stdout
    assert "version:  PostgreSQL 16." in status.stdout
    assert " MiB" in status.stdout.splitlines()[-1]

    stopped = run_task("db.stop", **env)
    assert stopped.stdout.strip() == "embedded PostgreSQL stopped", stopped.stderr
    # The postmaster removes its pid file, then exits.
    wait_until(lambda: not embedded._alive(pid), 5, f"the postmaster (pid {pid}) to exit")
    assert embedded.postmaster(pgdata) is None
    assert "state:    stopped" in run_task("db.status", **env).stdout

    started = run_task("db.start", **env)
    assert started.stdout.startswith("embedded PostgreSQL started: pid "), started.stderr
    assert embedded.postmaster(pgdata) is not None
    again = run_task("db.stop", **env)
    assert again.stdout.strip() == "embedded PostgreSQL stopped"
    assert run_task("db.stop", **env).stdout.strip() == "embedded PostgreSQL was not running"


def test_db_tasks_refuse_a_configured_server():
    result = run_task("db.stop", DATABASE_URL=UNREACHABLE)
    assert one_line_failure(result).startswith("error: DATABASE_URL or POSTGRES_HOST is set")


# --- quiet logs ------------------------------------------------------------------------------


def test_the_secret_key_warning_is_logged_once_per_process(caplog, monkeypatch):
    from cloutsy import config

    monkeypatch.setattr(config, "_warned", set())
    dev = load_settings({})
    with caplog.at_level(logging.WARNING, logger="cloutsy.config"):
        for _ in range(3):
            config.warn_if_insecure(dev, {})
        config.warn_if_insecure(dev, {config.WARNED_ENV: "1"})
    assert [r.getMessage() for r in caplog.records] == [
        f"{name} is not set: using the development-only key"
        for name in ("CLOUTSY_SECRET_KEY", "CLOUTSY_DATA_KEYS", "CLOUTSY_LOOKUP_KEY")
    ]


@pytest.mark.slow
def test_serve_warns_once_and_explains_its_threads_instead_of_granian(pool, tmp_path):
    from tests.engines import start_server

    server = start_server(tmp_path, CLOUTSY_SECRET_KEY="")
    try:
        log = server.log.read_text()
    finally:
        server.stop()
    # The task warned; the server process and its two workers did not repeat it.
    assert log.count("CLOUTSY_SECRET_KEY is not set") == 1, log
    assert "seems quite high" not in log, log
    assert "2 workers of 10 threads sharing a pool of 5" in log


def _tasks_module():
    """tasks.py as a module (it is not a package), for its one `edge()`."""
    spec = importlib.util.spec_from_file_location("cloutsy_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _missing_tool(tmp_path):
    backup.find_tool("pg_dump", 3)  # no PostgreSQL 3 client anywhere


def _bench_failure(tmp_path):
    parse_wrk("wrk: connection refused\n")


def _notebook_failure(tmp_path):
    reports.run_notebooks(tmp_path, tmp_path / "reports")


@pytest.mark.parametrize(
    ("fail", "expected"),
    [
        (_missing_tool, "error: no pg_dump for PostgreSQL 3 found (install postgresql-client-3)"),
        (_bench_failure, "error: wrk printed no BENCH line (last line: wrk: connection refused)"),
        (_notebook_failure, "error: no notebooks in "),
    ],
    ids=["missing tool", "bench", "notebook"],
)
def test_a_task_failure_is_one_line_and_exit_1_from_the_one_edge(fail, expected, tmp_path):
    """Library code raises the project's errors; only `tasks.edge()` turns them into an exit."""
    with pytest.raises(TaskError) as raised:
        fail(tmp_path)
    with pytest.raises(Exit) as exited, _tasks_module().edge():
        raise raised.value
    message = exited.value.message
    assert exited.value.code == 1 and message.startswith(expected), message
    assert len(message.splitlines()) == 1 and exited.value.__suppress_context__
