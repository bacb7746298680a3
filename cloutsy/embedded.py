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


def _pgserver():  # noqa: ANN202 - the pgserver module
    """Import pgserver quietly: platformdirs warns that XDG_RUNTIME_DIR is unset (harmless)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def bin_dir() -> Path:
    """The embedded server's own binaries (pg_dump, pg_restore, psql, pg_ctl)."""
    return Path(_pgserver().__file__).parent / "pginstall" / "bin"


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


# --- start, stop, status: by the postmaster's own pid file, not pgserver's bookkeeping -------
#
# pgserver counts the processes using a server in `.handle_pids.json` and stops it only
# when the last one exits; a crashed process leaves its pid there for ever, and then
# nothing ever stops the server. These read `postmaster.pid` (what pg_ctl itself uses).

HANDLE_PIDS = ".handle_pids.json"


def _alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    import os

    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def postmaster(pgdata: Path) -> dict[str, str] | None:
    """The running server's pid, port and socket directory from postmaster.pid, or None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if not lines or not lines[0].strip().isdigit() or not _alive(int(lines[0])):
        return None
    # Lines: pid, data dir, start time, port, socket directory, listen address, shmem, status.
    get = lines.__getitem__
    return {
        "pid": lines[0].strip(),
        "port": get(3).strip() if len(lines) > 3 else "",
        "socket": get(4).strip() if len(lines) > 4 else "",
    }


def version() -> str:
    """The embedded PostgreSQL's version, e.g. `16.2`."""
    import subprocess

    out = subprocess.run(
        [str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, timeout=10
    ).stdout.split()
    return out[-1] if out else "unknown"


def size_bytes(pgdata: Path) -> int:
    """Bytes the data directory takes on disk (its files' sizes)."""
    total = 0
    for path in pgdata.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # a file removed while we walk (WAL recycling)
            continue
    return total


def forget_handles(pgdata: Path) -> None:
    """Drop pgserver's list of processes using the server (stale once the server stopped)."""
    (pgdata / HANDLE_PIDS).unlink(missing_ok=True)


def ensure_stopped(pgdata: Path) -> bool:
    """Stop the server on `pgdata` if one runs (fast shutdown); return whether one did."""
    if postmaster(pgdata) is None:
        forget_handles(pgdata)
        return False
    stop(pgdata, "fast")
    forget_handles(pgdata)
    return True
