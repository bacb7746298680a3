"""Translate database constraint violations into the error tree, in one place.

Uniqueness lives in the database (unique indexes); whichever request loses a race
gets the same `Conflict(field)` a pre-check would have raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from peewee import IntegrityError
from pydantic.alias_generators import to_camel

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


def error_from(exc: IntegrityError) -> CloutsyError | None:
    """The domain error an IntegrityError stands for, or None if it is unexpected."""
    code, constraint = _diag(exc)
    if code == UNIQUE_VIOLATION and constraint in UNIQUE_FIELDS:
        return Conflict(UNIQUE_FIELDS[constraint])
    if code == FOREIGN_KEY_VIOLATION and constraint and "niche_id" in constraint:
        return Invalid("unknown niche", [{"field": "nicheIds", "message": "unknown niche id"}])
    if code == CHECK_VIOLATION and constraint:
        # Constraint names are <table>_<column>_check.
        field = to_camel(constraint.split("_", 1)[-1].removesuffix("_check"))
        return Invalid("value not allowed", [{"field": field, "message": "value not allowed"}])
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Run a write; turn a known constraint violation into Conflict/Invalid."""
    try:
        yield
    except IntegrityError as exc:
        error = error_from(exc)
        if error is None:
            raise
        raise error from None
