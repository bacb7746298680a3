"""Translate database constraint violations into the error tree, in one place.

Uniqueness lives in the database (unique indexes); whichever request loses a race
gets the same `Conflict(field)` a pre-check would have raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from peewee import SQL, Field, IntegrityError, Model, ModelIndex
from pydantic.alias_generators import to_camel

from cloutsy.db import database
from cloutsy.errors import CloutsyError, Conflict, Invalid
from cloutsy.models import UNIQUE_FIELDS

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"


def _driver_error(exc: BaseException) -> BaseException | None:
    """The psycopg2 error peewee wrapped (peewee 4 chains it as the cause)."""
    for candidate in (
        getattr(exc, "orig", None),
        exc.__cause__,
        exc.__context__,
        *(exc.args[:1] if exc.args else ()),
    ):
        if getattr(candidate, "pgcode", None):
            return candidate  # type: ignore[no-any-return]
    return None


def _diag(exc: IntegrityError) -> tuple[str | None, str | None]:
    orig = _driver_error(exc)
    code = getattr(orig, "pgcode", None)
    diag = getattr(orig, "diag", None)
    return code, getattr(diag, "constraint_name", None)


def unknown_niche(niche_id: int | None = None) -> Invalid:
    """The error for a `nicheIds` entry naming no active niche (None: the database's
    foreign key refused one, without saying which)."""
    message = "unknown niche id" if niche_id is None else f"no active niche with id {niche_id}"
    return Invalid("unknown niche", [{"field": "nicheIds", "message": message}])


def error_from(exc: IntegrityError) -> CloutsyError | None:
    """The domain error an IntegrityError stands for, or None if it is unexpected."""
    code, constraint = _diag(exc)
    if code == UNIQUE_VIOLATION and constraint in UNIQUE_FIELDS:
        return Conflict(UNIQUE_FIELDS[constraint])
    if code == FOREIGN_KEY_VIOLATION and constraint and "niche_id" in constraint:
        return unknown_niche()
    if code == CHECK_VIOLATION and constraint:
        # Constraint names are <table>_<column>_check.
        field = to_camel(constraint.split("_", 1)[-1].removesuffix("_check"))
        return Invalid("value not allowed", [{"field": field, "message": "value not allowed"}])
    return None


def unique_checks(model: type[Model]) -> list[tuple[str, str, str]]:
    """(index name, SQL expression, column) of each single-column unique rule of `model`.

    Read from the model's own fields and indexes (`lower(email)` as well as a plain
    `phone`), so the check below follows wherever uniqueness is declared.
    """
    table = model._meta.table_name  # type: ignore[attr-defined]
    checks = []
    for f in model._meta.sorted_fields:  # type: ignore[attr-defined]
        if f.unique and not f.primary_key:
            checks.append((f"{table}_{f.column_name}", f'"{f.column_name}"', f.column_name))
    indexes: list[Any] = list(model._meta.indexes)  # type: ignore[attr-defined]
    for found in indexes:
        if not isinstance(found, ModelIndex):
            continue
        index: Any = found  # peewee keeps an index's parts in private attributes
        if not index._unique:
            continue
        parts = index._expressions
        if len(parts) != 1:
            continue
        part = parts[0]
        if isinstance(part, Field):
            checks.append((index._name, f'"{part.column_name}"', part.column_name))
        elif isinstance(part, SQL):
            columns = model._meta.columns  # type: ignore[attr-defined]
            words = [w for w in re.findall(r"[a-z_]+", part.sql) if w in columns]
            if len(words) == 1:
                checks.append((index._name, part.sql, words[0]))
    order = [f.column_name for f in model._meta.sorted_fields]  # type: ignore[attr-defined]

    def place(check: tuple[str, str, str]) -> int:
        # In the order of the fields the client sees: `email`, not where its digest sits.
        named = UNIQUE_FIELDS[check[0]]
        return order.index(named if named in order else check[2])

    return sorted((c for c in checks if c[0] in UNIQUE_FIELDS), key=place)


def taken_fields(
    model: type[Model], values: Mapping[str, Any], exclude_id: int | None = None
) -> list[str]:
    """The JSON names of every unique value in `values` another row already holds.

    One statement over all the unique columns at once, so a 409 can name them all.
    """
    tests, params = [], []
    names = []
    for index, expression, column in unique_checks(model):
        value = values.get(column)
        if value is None:
            continue
        probe = re.sub(rf"\b{column}\b", "%s", expression.replace(f'"{column}"', column))
        tests.append(f"{expression} = {probe}")
        params.append(value)
        names.append(UNIQUE_FIELDS[index])
    if not tests:
        return []
    table = model._meta.table_name  # type: ignore[attr-defined]
    flags = ", ".join(f"coalesce(bool_or({t}), false)" for t in tests)
    where = " OR ".join(tests)
    sql = f'SELECT {flags} FROM "{table}" WHERE ({where})'
    if exclude_id is not None:
        sql += " AND id <> %s"
    row = database.execute_sql(sql, [*params, *params, *([exclude_id] if exclude_id else [])])
    found = row.fetchone()
    return [name for name, hit in zip(names, found, strict=True) if hit]


@contextmanager
def translated(
    model: type[Model] | None = None,
    values: Mapping[str, Any] | None = None,
    exclude_id: int | None = None,
) -> Iterator[None]:
    """Run a write; turn a known constraint violation into Conflict/Invalid.

    Given the `model` and the `values` written, a unique violation names every taken
    field (one `details` entry each), not only the one PostgreSQL stopped at. Wrap it
    around the transaction, so the check runs once the failed write is rolled back.
    """
    try:
        yield
    except IntegrityError as exc:
        error = error_from(exc)
        if error is None:
            raise
        if isinstance(error, Conflict) and model is not None and values is not None:
            fields = taken_fields(model, values, exclude_id)
            if error.field not in fields:
                fields.insert(0, error.field)
            error = Conflict.of(fields)
        raise error from None
