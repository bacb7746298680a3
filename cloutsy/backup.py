"""Logical backups (`pg_dump`/`pg_restore`) with manifests, restore drills and retention.

The embedded server ships its own binaries (PostgreSQL 16); the system ones may be
another major version, which pg_dump refuses. Credentials go through PG*
environment variables, never the command line (visible in `ps`).

Every backup writes a manifest beside it (`*.manifest.json`): each table of the schema
with its row count and a checksum of its rows, read in the very snapshot the dump was
taken from (`pg_export_snapshot()` + `pg_dump --snapshot`). `verify()` restores a
backup into a scratch database and compares. Backups are private: the directory is
0700 and each file 0600; `keep` deletes all but the newest N.
Physical base backups and point-in-time recovery live in `cloutsy/pitr.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from cloutsy import embedded
from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.db import connect_params, connection_url, current
from cloutsy.errors import BadRequest, ToolMissing, Unavailable

# Per table: its rows and an order-independent checksum of them (the sum of a 64-bit
# slice of each row's md5): one streaming pass, no sort, no giant string in memory.
TABLE_CHECKSUM = (
    "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint"
    "::numeric), 0)::text FROM {} t"
)
SCHEMA_TABLES = (
    "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') "
    "AND c.relnamespace = current_schema()::regnamespace ORDER BY c.relname"
)


# The default place; `settings.backup_dir` (CLOUTSY_BACKUP_DIR) is what the code uses.
BACKUP_DIR = PROJECT_ROOT / "backups"


def backup_dir(settings: Settings) -> Path:
    """Where backups go (`CLOUTSY_BACKUP_DIR`, default `backups/`)."""
    return settings.backup_dir


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
    """A `tool` binary whose major version equals `major`, or ToolMissing naming what to install."""
    for binary in _candidates(tool, major):
        if binary.exists() and _version(binary) == major:
            return binary
    raise ToolMissing(f"no {tool} for PostgreSQL {major} found (install postgresql-client-{major})")


def conn_params(settings: Settings, url: str | None = None) -> dict[str, Any]:
    """psycopg2 keyword arguments for a tool connection (as the migrator): no statement_timeout."""
    params = connect_params(url or connection_url(settings, "migrate"), settings)
    params.pop("connection_factory", None)
    params["options"] = "-c statement_timeout=0 -c TimeZone=UTC"
    params["dbname"] = params.pop("database")
    return params


def pg_env(params: Mapping[str, Any]) -> dict[str, str]:
    """The PG* environment for a libpq tool reaching `params` (password never on argv)."""
    env = dict(os.environ)
    mapping = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
    }
    for key, var in mapping.items():
        if params.get(key) is not None:
            env[var] = str(params[key])
    env["PGCONNECT_TIMEOUT"] = str(params.get("connect_timeout", 5))
    return env


def run_tool(cmd: list[str], env: dict[str, str] | None = None, user: str | None = None) -> str:
    """Run a PostgreSQL tool; a failure is Unavailable naming the tool and its last line."""
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, user=user)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise Unavailable(f"{Path(cmd[0]).name} failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


# --- privacy -------------------------------------------------------------------------------


def private_dir(path: Path, owner_uid: int | None = None) -> Path:
    """Create `path` (and parents) with mode 0700, owned by `owner_uid` when given (as root)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    if owner_uid is not None and os.geteuid() == 0:
        os.chown(path, owner_uid, -1)
    return path


def make_private(path: Path) -> None:
    """Files 0600 and directories 0700, recursively."""
    if path.is_dir():
        path.chmod(0o700)
        for root, dirs, files in os.walk(path):
            for name in dirs:
                (Path(root) / name).chmod(0o700)
            for name in files:
                (Path(root) / name).chmod(0o600)
    else:
        path.chmod(0o600)


# --- manifests -----------------------------------------------------------------------------


def table_manifest(cur: Any) -> dict[str, dict[str, Any]]:
    """Each table of the current schema: {"rows": n, "checksum": "…"} (the cursor's snapshot)."""
    cur.execute(SCHEMA_TABLES)
    tables = [name for (name,) in cur.fetchall()]
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        cur.execute(sql.SQL(TABLE_CHECKSUM).format(sql.Identifier(table)))
        rows, checksum = cur.fetchone()
        out[table] = {"rows": int(rows), "checksum": str(checksum)}
    return out


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadRequest(f"no readable manifest at {path}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise BadRequest(f"{path} is not a backup manifest")
    return data


@dataclass(frozen=True)
class TableCheck:
    table: str
    expected: dict[str, Any] | None
    found: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.expected == self.found

    def line(self) -> str:
        if self.expected is None:
            return f"DIFF {self.table}: in the restore, not in the manifest"
        if self.found is None:
            return f"DIFF {self.table}: in the manifest ({self.expected['rows']:,} rows), missing"
        rows = f"{self.found['rows']:,} rows"
        if self.ok:
            return f"ok   {self.table}: {rows}, checksum {self.found['checksum']}"
        if self.found["rows"] != self.expected["rows"]:
            return f"DIFF {self.table}: {rows}, manifest says {self.expected['rows']:,}"
        return f"DIFF {self.table}: {rows}, checksum differs from the manifest"


@dataclass(frozen=True)
class Verification:
    backup: Path
    checks: tuple[TableCheck, ...]
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [c.line() for c in self.checks]
        if self.error:
            out.append(f"FAIL {self.error}")
        return out


def compare(expected: dict[str, Any], found: dict[str, Any]) -> tuple[TableCheck, ...]:
    names = sorted(set(expected) | set(found))
    return tuple(TableCheck(n, expected.get(n), found.get(n)) for n in names)


# --- logical backups -----------------------------------------------------------------------


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def logical_backups(directory: Path) -> list[Path]:
    """The logical dumps in `directory`, oldest first."""
    return sorted(directory.glob("cloutsy-*.dump"), key=lambda p: p.name.rsplit("-", 1)[-1])


def manifest_path(dump: Path) -> Path:
    return dump.with_suffix(".manifest.json")


def backup(settings: Settings, directory: Path | None = None, keep: int = 0) -> Path:
    """Dump to `directory/cloutsy-<db>-<UTC stamp>.dump` with its manifest; keep the newest N."""
    directory = private_dir(directory or backup_dir(settings))
    pg_dump = find_tool("pg_dump", server_major())
    params = conn_params(settings)
    env = pg_env(params)
    stamp = _stamp()
    path = directory / f"cloutsy-{params['dbname']}-{stamp}.dump"
    conn = psycopg2.connect(**params)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            # The manifest and the dump read the very same snapshot.
            cur.execute("SELECT pg_export_snapshot(), now(), current_setting('server_version')")
            snapshot, taken_at, version = cur.fetchone()
            tables = table_manifest(cur)
            run_tool(
                [
                    str(pg_dump),
                    "--format=custom",
                    "--no-owner",
                    f"--snapshot={snapshot}",
                    f"--file={path}",
                ],
                env,
            )
        conn.rollback()
    finally:
        conn.close()
    make_private(path)
    write_manifest(
        manifest_path(path),
        {
            "kind": "logical",
            "database": params["dbname"],
            "server_version": version,
            "taken_at": taken_at.isoformat(),
            "file": path.name,
            "bytes": path.stat().st_size,
            "tables": tables,
        },
    )
    if keep:
        prune_logical(directory, keep)
    return path


def prune_logical(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` dumps (with their manifests); return the deleted."""
    if keep < 1:
        raise BadRequest("--keep must be at least 1")
    old = logical_backups(directory)[:-keep]
    for dump in old:
        dump.unlink(missing_ok=True)
        manifest_path(dump).unlink(missing_ok=True)
    return old


def restore(settings: Settings, path: Path) -> None:
    """Replace the configured database's contents with the dump at `path`."""
    if not path.is_file():
        raise BadRequest(f"no such backup file: {path}")
    pg_restore = find_tool("pg_restore", server_major())
    env = pg_env(conn_params(settings))
    run_tool(
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


@contextmanager
def scratch_database(settings: Settings, name: str) -> Iterator[dict[str, Any]]:
    """A new empty database `name` on the configured server, dropped afterwards.

    Made with the admin connection (the embedded server's superuser, else
    MIGRATION_DATABASE_URL): the migrator role of §9 may not create databases.
    """
    params = conn_params(settings, connection_url(settings, "admin"))
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield {**params, "dbname": name}
        finally:
            with admin.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        admin.close()


def manifest_of(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The table manifest of the database behind `params`."""
    conn = psycopg2.connect(**params)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            return table_manifest(cur)
    finally:
        conn.close()


def verify_logical(settings: Settings, dump: Path) -> Verification:
    """Restore `dump` into a scratch database, compare it with its manifest, drop it."""
    import time

    started = time.perf_counter()
    manifest = read_manifest(manifest_path(dump))
    pg_restore = find_tool("pg_restore", server_major())
    scratch = f"{manifest.get('database', 'cloutsy')}_verify_{os.getpid()}"[:63]
    with scratch_database(settings, scratch) as params:
        try:
            run_tool(
                [
                    str(pg_restore),
                    "--no-owner",
                    "--exit-on-error",
                    f"--dbname={scratch}",
                    str(dump),
                ],
                pg_env(params),
            )
        except Unavailable as exc:
            return Verification(
                dump, (), f"restore failed: {exc.message}", time.perf_counter() - started
            )
        found = manifest_of(params)
    checks = compare(manifest["tables"], found)
    return Verification(dump, checks, None, time.perf_counter() - started)


def newest_backup(settings: Settings) -> Path:
    """The newest backup of either kind in the backup directory."""
    from cloutsy import pitr

    candidates = [*logical_backups(backup_dir(settings)), *pitr.base_backups(settings)]
    if not candidates:
        raise BadRequest(f"no backup in {backup_dir(settings)}")
    return max(candidates, key=lambda p: p.name.rsplit("-", 1)[-1])


def verify(
    settings: Settings, target: Path | None = None, progress: Callable[[str], None] | None = None
) -> Verification:
    """Restore the newest (or the given) backup into scratch and check it against its manifest."""
    from cloutsy import pitr

    path = target or newest_backup(settings)
    if not path.exists():
        raise BadRequest(f"no such backup: {path}")
    if progress:
        progress(f"verifying {path.name}")
    if path.is_dir():
        return pitr.verify_base(settings, path, progress)
    return verify_logical(settings, path)
