"""Backups with `pg_dump`/`pg_restore` whose major version matches the server's.

The embedded server ships its own binaries (PostgreSQL 16); the system ones may be
another major version, which pg_dump refuses. Credentials go through PG*
environment variables, never the command line (visible in `ps`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

from cloutsy import embedded
from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.db import connect_params, connection_url, current
from cloutsy.errors import BadRequest, Unavailable

BACKUP_DIR = PROJECT_ROOT / "backups"


def server_major() -> int:
    """The configured server's major version (e.g. 16)."""
    db = current()
    with db.connection_context():
        return int(db.execute_sql("SHOW server_version_num").fetchone()[0]) // 10000


def _candidates(tool: str, major: int) -> list[Path]:
    found = [embedded.bin_dir() / tool, Path(f"/usr/lib/postgresql/{major}/bin/{tool}")]
    on_path = shutil.which(tool)
    if on_path:
        found.append(Path(on_path))
    return found


def _version(binary: Path) -> int | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    # "pg_dump (PostgreSQL) 16.2"
    words = out.stdout.split()
    return int(words[-1].split(".")[0]) if words and words[-1][0].isdigit() else None


def find_tool(tool: str, major: int) -> Path:
    """A `tool` binary whose major version equals `major`, or BadRequest naming what is missing."""
    for binary in _candidates(tool, major):
        if binary.exists() and _version(binary) == major:
            return binary
    raise BadRequest(f"no {tool} for PostgreSQL {major} found (install postgresql-client-{major})")


def _pg_env(settings: Settings) -> dict[str, str]:
    params = connect_params(connection_url(settings, "migrate"), settings)
    env = dict(os.environ)
    mapping = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "database": "PGDATABASE",
    }
    for key, var in mapping.items():
        if params.get(key) is not None:
            env[var] = str(params[key])
    env["PGCONNECT_TIMEOUT"] = str(settings.connect_timeout_s)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise Unavailable(f"{Path(cmd[0]).name} failed: {lines[-1] if lines else 'no output'}")


def backup(settings: Settings, directory: Path = BACKUP_DIR) -> Path:
    """Write a custom-format dump to `directory/cloutsy-<db>-<UTC timestamp>.dump`."""
    pg_dump = find_tool("pg_dump", server_major())
    directory.mkdir(parents=True, exist_ok=True)
    env = _pg_env(settings)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"cloutsy-{env.get('PGDATABASE', 'db')}-{stamp}.dump"
    _run([str(pg_dump), "--format=custom", "--no-owner", f"--file={path}"], env)
    return path


def restore(settings: Settings, path: Path) -> None:
    """Replace the configured database's contents with the dump at `path`."""
    if not path.is_file():
        raise BadRequest(f"no such backup file: {path}")
    pg_restore = find_tool("pg_restore", server_major())
    env = _pg_env(settings)
    _run(
        [
            str(pg_restore),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            f"--dbname={env['PGDATABASE']}",
            str(path),
        ],
        env,
    )
