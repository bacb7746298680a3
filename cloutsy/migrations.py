"""Schema migrations with peewee's own runner (`playhouse.migrations`), on the configured database.

The numbered scripts live in `migrations/` at the project root; the applied
history in the `schema_migration` table. `pending()` feeds /health.
"""

from __future__ import annotations

from pathlib import Path

from playhouse.migrations import Migration, MigrationError, Runner, template
from playhouse.schema_diff import SchemaDiff, diff_models

from cloutsy import roles
from cloutsy.config import PROJECT_ROOT
from cloutsy.db import current
from cloutsy.models import MODELS

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"

__all__ = ["MigrationError", "apply", "create", "drift", "pending", "rollback", "status"]


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
    """Apply pending migrations (up to `target`), then re-grant the roles; return their names.

    Column grants (the analyst's) are not covered by default privileges, so every
    migration is followed by `roles.grant()` (nothing when the roles do not exist).
    """
    applied = runner().up(target)
    db = current()
    with db.atomic():
        roles.grant(db.cursor())
    return applied


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
