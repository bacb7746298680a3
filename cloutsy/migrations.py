"""Schema migrations with peewee's own runner (`playhouse.migrations`), applied safely.

The numbered scripts live in `migrations/` at the project root; the applied
history in the `schema_migration` table. `pending()` feeds /health.

Safe by construction (CONTRACT §11):

- every migration runs with a short `lock_timeout` (`LOCK_TIMEOUT_MS`) and no
  `statement_timeout`, so a DDL statement queued behind a long transaction gives up
  in seconds instead of stopping every read and write queued behind it; the runner
  then retries with backoff (`apply(attempts=…)`);
- an index on an existing table is built `CONCURRENTLY` in a module with
  `atomic = False` (peewee's runner honours it); if such a build times out, the
  INVALID index it leaves is dropped before the retry;
- `render()` gives the SQL a migration sends without running it, and `lint()` checks
  it with squawk (`invoke test` runs it on every migration).

The convention for a migration module: `UP` / `DOWN` lists of SQL statements (one
statement each, idempotent: `IF NOT EXISTS` / `IF EXISTS`, so a retried non-atomic
migration can run again from the top), `up`/`down` executing them in order, and
`SQUAWK_EXCLUDE = {"rule": "why"}` for a rule deliberately not applied to it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peewee import DatabaseError, PostgresqlDatabase
from playhouse.migrate import PostgresqlMigrator
from playhouse.migrations import Migration, MigrationError, Runner, template
from playhouse.schema_diff import SchemaDiff, diff_models

from cloutsy import roles
from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.db import current
from cloutsy.models import MODELS

log = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Long enough for a lock held by an ordinary request (milliseconds), short enough that
# the writes queued behind a waiting ALTER are not stalled for long.
LOCK_TIMEOUT_MS = 3000
ATTEMPTS = 5
BACKOFF_S = 1.0
# Rules squawk applies that this project deliberately does not follow everywhere.
# Rules excluded for every migration (each with its reason); a module adds its own in
# its `SQUAWK_EXCLUDE`. None today: render() shows the runner's own lock_timeout and
# statement_timeout, which satisfy squawk's timeout rules.
SQUAWK_EXCLUDE: dict[str, str] = {}
# The oldest server the project supports (Debian's PostgreSQL 15; the embedded one is 16).
SQUAWK_PG_VERSION = "15.0"
LOCK_NOT_AVAILABLE = "55P03"

__all__ = [
    "LockTimeout",
    "MigrationError",
    "apply",
    "migrate",
    "create",
    "drift",
    "lint",
    "pending",
    "preview_rollback",
    "render",
    "rollback",
    "status",
]


class LockTimeout(MigrationError):
    """A migration could not get its lock within `lock_timeout`, on every attempt."""


def runner(directory: Path = MIGRATIONS_DIR, table_name: str = "schema_migration") -> Runner:
    """A runner bound to the initialised pool (the caller holds a connection)."""
    return Runner(current(), str(directory), table_name=table_name)


def status() -> list[Migration]:
    """Every migration, in order, with `applied` set to when (None = pending)."""
    return runner().status()


def pending() -> list[str]:
    """Names of the migrations not yet applied."""
    return [m.name for m in status() if not m.applied]


@contextmanager
def session_timeouts(db: PostgresqlDatabase, lock_timeout_ms: int) -> Iterator[None]:
    """Run with a short lock_timeout and no statement_timeout, then restore both."""
    db.execute_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
    # An index build on a big table legitimately runs longer than the app's 5 s limit.
    db.execute_sql("SET statement_timeout = 0")
    try:
        yield
    finally:
        # Inside a caller's aborted transaction RESET fails; its rollback undoes the SETs.
        with contextlib.suppress(DatabaseError):
            db.execute_sql("RESET lock_timeout")
            db.execute_sql("RESET statement_timeout")


def _invalid_indexes(db: PostgresqlDatabase) -> set[str]:
    rows = db.execute_sql(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    return {name for (name,) in rows}


def _is_lock_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(getattr(seen, "orig", None), "pgcode", None) == LOCK_NOT_AVAILABLE:
            return True
        if getattr(seen, "pgcode", None) == LOCK_NOT_AVAILABLE:
            return True
        if "lock timeout" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


MIGRATE_LOCK_KEY = 0x436C6F75  # pg_advisory_lock key: one `invoke migrate` at a time


class _LeftoverIndex(Exception):
    """An INVALID index could not be dropped yet (a long transaction still holds its table)."""


def _drop_invalid_indexes(db: PostgresqlDatabase) -> list[str]:
    """Drop INVALID indexes (left by a failed concurrent build); return those still there.

    Only one migrate runs at a time (advisory lock), so an INVALID index is a leftover,
    not a build in progress. Dropping one waits for the same transactions the build did:
    under lock_timeout it may not succeed yet; the next attempt or run tries again.
    """
    left = []
    for index in sorted(_invalid_indexes(db)):
        try:
            db.execute_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')
        except DatabaseError as exc:
            if not _is_lock_timeout(exc):
                raise
            left.append(index)
    return left


def apply(
    target: str | None = None,
    *,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    attempts: int = ATTEMPTS,
    backoff_s: float = BACKOFF_S,
    directory: Path = MIGRATIONS_DIR,
    table_name: str = "schema_migration",
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply pending migrations (up to `target`) one by one, then re-grant the roles (§9).

    Each runs under `lock_timeout_ms`; a lock timeout is retried `attempts` times with
    doubling backoff, after dropping any INVALID index a failed concurrent build left.
    Other errors stop at once. Raises `LockTimeout` when every attempt timed out.
    """
    db = current()
    run = runner(directory, table_name)
    rows = [m for m in run.status() if m.path is not None]
    if target is not None and target not in {m.name for m in rows}:
        raise MigrationError(f'unknown migration "{target}".')
    plan: list[str] = []
    for m in rows:
        if not m.applied:
            plan.append(m.name)
        if m.name == target:
            break
    if not plan:
        return []
    nested = db.in_transaction()
    if not nested:
        (locked,) = db.execute_sql(
            "SELECT pg_try_advisory_lock(%s)", (MIGRATE_LOCK_KEY,)
        ).fetchone()
        if not locked:
            raise MigrationError("another migrate is running on this database")
    done: list[str] = []
    try:
        with session_timeouts(db, lock_timeout_ms):
            for name in plan:
                _apply_one(run, name, lock_timeout_ms, attempts, backoff_s, nested, progress)
                done.append(name)
    finally:
        if not nested:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
    # Column grants (the analyst's) are not covered by default privileges: re-grant the
    # roles after every migration (nothing when they do not exist).
    with db.atomic():
        roles.grant(db.cursor())
    return done


def _apply_one(
    run: Runner,
    name: str,
    lock_timeout_ms: int,
    attempts: int,
    backoff_s: float,
    nested: bool,
    progress: Callable[[str], None] | None,
) -> None:
    db = current()
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            if not nested and _drop_invalid_indexes(db):
                # `CREATE INDEX CONCURRENTLY IF NOT EXISTS` would skip an INVALID leftover.
                raise _LeftoverIndex()
            run.up(name)
            return
        except Exception as exc:
            # Never retry inside a caller's transaction, nor an error other than a lock wait.
            if nested or not (isinstance(exc, _LeftoverIndex) or _is_lock_timeout(exc)):
                raise
            left = _drop_invalid_indexes(db)
            message = (
                f"{name}: a lock was not granted within {lock_timeout_ms} ms "
                f"(attempt {attempt}/{attempts})"
            )
            log.warning(message)
            if progress is not None:
                progress(message)
            if attempt == attempts:
                leftover = (
                    f"; INVALID index {', '.join(left)} is dropped by the next run" if left else ""
                )
                raise LockTimeout(
                    f"{name} gave up: a lock was not granted within {lock_timeout_ms} ms on "
                    f"{attempts} attempt(s) (a long transaction holds the table){leftover}"
                ) from None
            time.sleep(delay)
            delay *= 2


def migrate(
    settings: Settings,
    target: str | None = None,
    *,
    backup: bool = True,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> tuple[Path | None, list[str]]:
    """`invoke migrate`: in production take a logical backup first (unless `backup=False`),
    then `apply()`. Returns the backup's path (or None) and the applied names.
    """
    directory = options.get("directory", MIGRATIONS_DIR)
    table_name = options.get("table_name", "schema_migration")
    waiting = [m.name for m in runner(directory, table_name).status() if not m.applied]
    taken = None
    if waiting and settings.is_production and backup:
        from cloutsy.backup import backup as take_backup

        if progress is not None:
            progress(f"{len(waiting)} migration(s) pending: taking a logical backup first")
        taken = take_backup(settings)
        if progress is not None:
            progress(f"backup written: {taken}")
    return taken, apply(target, progress=progress, **options)


def rollback(target: str | None = None, all_: bool = False) -> list[str]:
    """Revert the latest migration, back through `target`, or every one with `all_`."""
    run = runner()
    db = current()
    with session_timeouts(db, LOCK_TIMEOUT_MS):
        if all_:
            applied = [m.name for m in run.status() if m.applied]
            return run.down(applied[0]) if applied else []
        return run.down(target)


def drift() -> SchemaDiff:
    """Tables, columns and indexes that differ between the models and the database."""
    return diff_models(current(), MODELS)


# --- rendering and linting ----------------------------------------------------------------


class _Cursor:
    rowcount = 0
    description = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class RecordingDatabase(PostgresqlDatabase):
    """A PostgreSQL database object that records the SQL it is given and runs none of it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.statements: list[str] = []

    # Transactions a migration opens itself (batches in a non-atomic module) are recorded
    # too, so squawk sees what runs inside one.
    def begin(self, *args: Any, **kwargs: Any) -> None:
        self.statements.append("BEGIN")

    def commit(self) -> None:
        self.statements.append("COMMIT")

    def rollback(self) -> None:
        self.statements.append("ROLLBACK")

    def execute_sql(self, sql, params=None):  # type: ignore[no-untyped-def]
        if params:
            sql = self.mogrify(sql, params)
        self.statements.append(sql.strip().rstrip(";"))
        return _Cursor()

    @staticmethod
    def mogrify(sql: str, params: Any) -> str:
        def literal(value: Any) -> str:
            if value is None:
                return "NULL"
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float):
                return str(value)
            return "'" + str(value).replace("'", "''") + "'"

        parts = sql.split("%s")
        out = parts[0]
        for part, value in zip(parts[1:], params, strict=False):
            out += literal(value) + part
        return out


@dataclass(frozen=True)
class Rendered:
    name: str
    atomic: bool
    exclude: dict[str, str]
    sql: str


def render(path: Path, direction: str = "up") -> Rendered:
    """The SQL `path`'s `up` (or `down`) sends, with the session settings the runner adds."""
    migration = Migration(0, path.stem, str(path), None)
    module = migration.load()
    recorder = RecordingDatabase()
    getattr(module, direction)(PostgresqlMigrator(recorder), recorder)
    atomic = bool(getattr(module, "atomic", True))
    lines = [f"SET lock_timeout = '{LOCK_TIMEOUT_MS}ms';", "SET statement_timeout = 0;"]
    lines += [statement + ";" for statement in recorder.statements if statement]
    return Rendered(
        path.stem, atomic, dict(getattr(module, "SQUAWK_EXCLUDE", {})), "\n".join(lines)
    )


def squawk_binary() -> str:
    """The squawk executable installed from PyPI (`squawk-cli`)."""
    import sys

    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if not found:
        raise MigrationError("squawk is not installed (pip install -r requirements.txt)")
    return found


@dataclass(frozen=True)
class LintResult:
    name: str
    ok: bool
    report: str


def lint(paths: list[Path] | None = None) -> list[LintResult]:
    """Render each migration and lint its SQL with squawk; one result per migration."""
    files = paths if paths is not None else sorted(MIGRATIONS_DIR.glob("[0-9]*.py"))
    results = []
    for path in files:
        rendered = render(path)
        excluded = sorted({*SQUAWK_EXCLUDE, *rendered.exclude})
        with tempfile.TemporaryDirectory() as tmp:
            sql_file = Path(tmp) / f"{rendered.name}.sql"
            sql_file.write_text(rendered.sql + "\n")
            cmd = [squawk_binary(), "--pg-version", SQUAWK_PG_VERSION, "--reporter", "gcc"]
            if excluded:
                cmd.append("--exclude=" + ",".join(excluded))
            if rendered.atomic:
                cmd.append("--assume-in-transaction")
            cmd.append(str(sql_file))
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        report = (done.stdout + done.stderr).strip()
        results.append(LintResult(rendered.name, done.returncode == 0, report))
    return results


# --- writing new migrations ------------------------------------------------------------------

SAFE_TEMPLATE = '''\
"""{title}

Safe-migration style (cloutsy/migrations.py): one idempotent statement per list item;
new columns nullable or with a constant DEFAULT; an index on an existing table built
CONCURRENTLY, which needs `atomic = False`. `invoke test` lints this file with squawk.
"""

# Set to False when UP builds or drops an index CONCURRENTLY (it cannot run in a transaction).
atomic = {atomic}

# Squawk rules deliberately not applied here, each with its reason.
SQUAWK_EXCLUDE: dict[str, str] = {{}}

UP = [
{up}
]

DOWN = [
{down}
]


def up(migrator, db):
    for statement in UP:
        db.execute_sql(statement)


def down(migrator, db):
    for statement in DOWN:
        db.execute_sql(statement)
'''

_CREATE_INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX (?!CONCURRENTLY)", re.IGNORECASE)
_ADD_COLUMN = re.compile(r"^(ALTER TABLE \S+ ADD COLUMN )(?!IF NOT EXISTS)", re.IGNORECASE)
_INDEX_NAME = re.compile(r"INDEX CONCURRENTLY IF NOT EXISTS (\S+)", re.IGNORECASE)
_COLUMN_NAME = re.compile(r"^ALTER TABLE (\S+) ADD COLUMN IF NOT EXISTS (\S+)", re.IGNORECASE)


def _safe_statement(sql: str) -> str:
    """Rewrite a statement the diff produced into its concurrent, idempotent form."""
    match = _CREATE_INDEX.match(sql)
    if match:
        rest = sql[match.end() :]
        rest = re.sub(r"^IF NOT EXISTS ", "", rest, flags=re.IGNORECASE)
        return f"CREATE {match.group(1) or ''}INDEX CONCURRENTLY IF NOT EXISTS {rest}"
    return _ADD_COLUMN.sub(r"\1IF NOT EXISTS ", sql)


def _reverse(sql: str) -> str | None:
    """The statement undoing `sql`, for the patterns the generator writes (else None)."""
    index = _INDEX_NAME.search(sql)
    if index:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {index.group(1)}"
    column = _COLUMN_NAME.match(sql)
    if column:
        return f"ALTER TABLE {column.group(1)} DROP COLUMN IF EXISTS {column.group(2)}"
    return None


def safe_body(title: str, diff: SchemaDiff | None) -> str:
    """A migration module in the safe style holding the SQL of `diff` (or an empty skeleton)."""
    up_sql: list[str] = []
    if diff:
        scratch = Path(tempfile.mkdtemp(prefix="cloutsy-mig-"))
        try:
            draft = scratch / "0000_draft.py"
            draft.write_text(template(diff))
            recorder = RecordingDatabase()
            Migration(0, draft.stem, str(draft), None).load().up(
                PostgresqlMigrator(recorder), recorder
            )
            up_sql = [_safe_statement(s) for s in recorder.statements if s]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    concurrent = any("CONCURRENTLY" in s.upper() for s in up_sql)
    down_sql = [r for r in (_reverse(s) for s in reversed(up_sql)) if r is not None]

    def listing(statements: list[str], hint: str) -> str:
        if not statements:
            return f"    # {hint}"
        return "\n".join(f"    {s!r}," for s in statements)

    return SAFE_TEMPLATE.format(
        title=title,
        atomic="False" if concurrent else "True",
        up=listing(up_sql, "'ALTER TABLE t ADD COLUMN IF NOT EXISTS c text',"),
        down=listing(
            down_sql, "the reverse of UP, newest first, e.g. 'ALTER TABLE t DROP COLUMN c'"
        ),
    )


def create(name: str) -> tuple[str, SchemaDiff]:
    """Write a new numbered migration from the model/database difference; return (path, diff)."""
    if not name.strip():
        raise MigrationError("a migration needs a name")
    diff = drift()
    return runner().create(name, body=safe_body(name.strip(), diff)), diff


@dataclass
class RollbackPreview:
    """What a rollback would revert and drop, found by running it and rolling back."""

    migrations: list[str]
    # table -> rows it holds now
    tables: dict[str, int] = field(default_factory=dict)
    # "table.column" -> non-null values it holds now
    columns: dict[str, int] = field(default_factory=dict)
    # why the preview could not run the down (a non-atomic migration), else None
    unknown: str | None = None

    def lines(self) -> list[str]:
        """Human lines: each table and column that would go, with its row count."""
        out = [f"revert: {name}" for name in self.migrations]
        out += [f"drop table {t} ({n:,} rows)" for t, n in sorted(self.tables.items())]
        out += [f"drop column {c} ({n:,} values)" for c, n in sorted(self.columns.items())]
        if self.unknown:
            out.append(f"(what it drops could not be previewed: {self.unknown})")
        elif not self.tables and not self.columns:
            out.append("no table or column is dropped")
        return out

    @property
    def rows(self) -> int:
        return sum(self.tables.values()) + sum(self.columns.values())


SNAPSHOT = """
SELECT c.table_name, c.column_name
  FROM information_schema.columns c
  JOIN information_schema.tables t USING (table_schema, table_name)
 WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
   AND c.table_name <> 'schema_migration'
"""


def _snapshot() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    for table, column in current().execute_sql(SNAPSHOT).fetchall():
        tables.setdefault(table, set()).add(column)
    return tables


def rollback_plan(target: str | None = None, all_: bool = False) -> list[Migration]:
    """The applied migrations `rollback()` would revert, newest first (it raises as it would)."""
    applied = [m for m in status() if m.applied]
    if target is not None and target not in {m.name for m in applied}:
        raise MigrationError(f'"{target}" is not an applied migration.')
    plan = []
    for migration in reversed(applied):
        plan.append(migration)
        if not all_ and (target is None or migration.name == target):
            break
    return plan


def preview_rollback(target: str | None = None, all_: bool = False) -> RollbackPreview:
    """Run the rollback inside a transaction, note what disappears, undo it, count the rows.

    PostgreSQL's DDL is transactional, so this shows exactly what `rollback()` would
    drop without a hand-kept list per migration. A migration that runs outside a
    transaction (`atomic = False`) is never run for a preview: it could commit.
    A short lock_timeout keeps a running service from waiting long behind the preview.
    """
    db = current()
    plan = rollback_plan(target, all_)
    names = [m.name for m in plan]
    outside = [m.name for m in plan if m.path and not getattr(m.load(), "atomic", True)]
    if outside:
        return RollbackPreview(names, unknown=f"{', '.join(outside)} runs outside a transaction")
    gone_tables: list[str] = []
    gone_columns: list[tuple[str, str]] = []
    with db.atomic() as txn:
        db.execute_sql("SET LOCAL lock_timeout = '2s'")
        before = _snapshot()
        try:
            with db.atomic():
                rollback(target, all_)
        except DatabaseError as exc:
            txn.rollback()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return RollbackPreview(names, unknown=reason)
        after = _snapshot()
        for table, columns in sorted(before.items()):
            if table not in after:
                gone_tables.append(table)
            else:
                gone_columns += [(table, c) for c in sorted(columns - after[table])]
        txn.rollback()
    preview = RollbackPreview(names)
    with db.atomic():
        for table in gone_tables:
            count = db.execute_sql(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            preview.tables[table] = int(count)
        for table, column in gone_columns:
            count = db.execute_sql(f'SELECT count("{column}") FROM "{table}"').fetchone()[0]
            preview.columns[f"{table}.{column}"] = int(count)
    return preview
