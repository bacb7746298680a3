"""The embedded PostgreSQL (pgserver): a real server shipped as a wheel, data under `.cloutsy/`.

Used when neither DATABASE_URL nor POSTGRES_HOST is set, so a fresh clone needs
nothing installed by hand. The server is left running between processes
(`cleanup_mode=None`): a second `invoke serve` or the test run reuses it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)


def bin_dir() -> Path:
    """The embedded server's own binaries (pg_dump, pg_restore, psql, pg_ctl)."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def server_uri(pgdata: Path, database: str = "postgres") -> str:
    """Start (or reuse) the server on `pgdata` and return the URI of `database`."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        return server.get_uri(database)


def ensure_database(admin_uri: str, name: str) -> None:
    """Create database `name` on the server behind `admin_uri` if it is missing."""
    conn = psycopg2.connect(admin_uri, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                log.info("creating database %s", name)
                # Another process may win the race to create it: that is fine.
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def drop_database(admin_uri: str, name: str) -> None:
    """Drop database `name` (used for throwaway test and benchmark databases)."""
    conn = psycopg2.connect(admin_uri, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        conn.close()


def _run_as() -> str | None:
    import os

    # As root, pgserver runs the server as its own `pgserver` system user.
    return "pgserver" if os.geteuid() == 0 else None


def pg_ctl(pgdata: Path, *args: str, timeout: float = 60) -> None:
    """Run the embedded `pg_ctl -D pgdata ARGS` as the user that owns the server."""
    import subprocess

    cmd = [str(bin_dir() / "pg_ctl"), "-D", str(pgdata), *args]
    user = _run_as()
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, user=user)


def stop(pgdata: Path, mode: str = "fast") -> None:
    """Stop the server on `pgdata` (`mode`: smart, fast or immediate, i.e. a crash)."""
    pg_ctl(pgdata, "-w", "-m", mode, "stop")


def start(pgdata: Path) -> None:
    """Start a stopped server on `pgdata` again with its previous options (same socket)."""
    opts = (pgdata / "postmaster.opts").read_text().split(None, 1)
    # postmaster.opts holds the command line that started the server: replay its options.
    replay = opts[1].strip() if len(opts) > 1 else ""
    pg_ctl(pgdata, "-w", "-l", str(pgdata / "log"), "-o", _strip_datadir(replay), "start")


def _strip_datadir(options: str) -> str:
    import shlex

    parts = shlex.split(options)
    kept: list[str] = []
    skip = False
    for part in parts:
        if skip:
            skip = False
            continue
        if part == "-D":
            skip = True
            continue
        kept.append(part)
    return " ".join(shlex.quote(p) for p in kept)
