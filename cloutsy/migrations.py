"""Schema migrations with peewee's own runner (`playhouse.migrations`), on the configured database.

The numbered scripts live in `migrations/` at the project root; the applied
history in the `schema_migration` table. `pending()` feeds /health.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from peewee import DatabaseError
from playhouse.migrations import Migration, MigrationError, Runner, template
from playhouse.schema_diff import SchemaDiff, diff_models

from cloutsy.config import PROJECT_ROOT
from cloutsy.db import current
from cloutsy.models import MODELS

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"

__all__ = [
    "MigrationError",
    "apply",
    "create",
    "drift",
    "pending",
    "preview_rollback",
    "rollback",
    "status",
]


def runner(directory: Path = MIGRATIONS_DIR) -> Runner:
    """A runner bound to the initialised pool (the caller holds a connection)."""
    return Runner(current(), str(directory))


def status() -> list[Migration]:
    """Every migration, in order, with `applied` set to when (None = pending)."""
    return runner().status()


def pending() -> list[str]:
    """Names of the migrations not yet applied."""
    return [m.name for m in status() if not m.applied]


def apply(target: str | None = None) -> list[str]:
    """Apply pending migrations (up to `target`); return their names."""
    return runner().up(target)


def rollback(target: str | None = None, all_: bool = False) -> list[str]:
    """Revert the latest migration, back through `target`, or every one with `all_`."""
    run = runner()
    if all_:
        applied = [m.name for m in run.status() if m.applied]
        return run.down(applied[0]) if applied else []
    return run.down(target)


def drift() -> SchemaDiff:
    """Tables, columns and indexes that differ between the models and the database."""
    return diff_models(current(), MODELS)


def create(name: str) -> tuple[str, SchemaDiff]:
    """Write a new numbered migration from the model/database difference; return (path, diff)."""
    if not name.strip():
        raise MigrationError("a migration needs a name")
    diff = drift()
    body = template(diff) if diff else None
    return runner().create(name, body=body), diff


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
