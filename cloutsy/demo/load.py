"""Loading the demo rows: one transaction, COPY streamed as CSV, indexes rebuilt once.

Rows go in with PostgreSQL COPY, streamed as CSV from memory, with explicit ids
(derived usernames, emails and phones stay unique); the id sequences are moved
past them afterwards. Existing rows are never touched: ids continue after them.
PII columns are encrypted and their digests computed batch by batch as COPY reads.
Everything happens in one transaction: a failure leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloutsy import crypto
from cloutsy.db import database
from cloutsy.demo.generate import generate_rows
from cloutsy.errors import Invalid
from cloutsy.models import DIGEST_COLUMNS, PII_COLUMNS
from cloutsy.progress import Progress
from cloutsy.services.lookup import digest_of


@dataclass(frozen=True)
class DemoResult:
    """How many rows `seed_demo` inserted."""

    influencers: int
    brands: int
    influencer_niches: int
    brand_niches: int


def count_accounts() -> int:
    """Influencers plus brands already in the database (`seed.demo` refuses to mix by default)."""
    with database.connected():
        row = database.execute_sql(
            "SELECT (SELECT count(*) FROM influencers) + (SELECT count(*) FROM brands)"
        ).fetchone()
    return int(row[0])


def seed_demo(
    influencers: int,
    brands: int,
    days: int,
    random_seed: int = 42,
    progress: Progress | None = None,
) -> DemoResult:
    """Insert `influencers` and `brands` signed up over the last `days` days, in one transaction."""
    for name, value, low in (("influencers", influencers, 0), ("brands", brands, 0)):
        if value < low:
            raise Invalid(f"{name} must be at least {low}, got {value}")
    if days < 1:
        raise Invalid(f"days must be at least 1, got {days}")
    report = progress or (lambda stage, done, total: None)
    with database.connected(), database.atomic():
        # A bulk load, not a request: the service's per-statement timeout (CONTRACT §3)
        # would cut the index rebuilds on a busy machine.
        database.execute_sql("SET LOCAL statement_timeout = 0")
        # The analytics rollups (migration 0005) are recounted once at the end instead of
        # being kept row by row through millions of inserts.
        database.execute_sql("SET LOCAL cloutsy.rollups = 'off'")
        # So are the accounts' niche refs (migration 0006): rebuilt once, not per COPY.
        database.execute_sql("SET LOCAL cloutsy.niche_refs = 'off'")
        loads = generate_rows(influencers, brands, days, random_seed, report)
        with _bulk_load({table: len(rows["id"]) for table, _, rows in loads}, report):
            for table, columns, rows in loads:
                _copy(table, columns, rows, report, _sealers(table))
        for done, (table, _, _) in enumerate(loads, start=1):
            database.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce(max(id), 0) + 1, false) FROM {table}"
            )
            # Fresh statistics for the columns plans turn on, so the planner (and EXPLAIN in
            # the notebooks) sees the new size at once. A full ANALYZE would also sample the
            # full-text index (seconds at 100k rows); autovacuum does that after the commit.
            database.execute_sql(f"ANALYZE {table} ({', '.join(PLANNER_COLUMNS[table])})")
            report("statistics", done, len(loads))
        database.execute_sql("SET LOCAL cloutsy.rollups = 'on'")
        database.execute_sql("SELECT cloutsy_rollups_rebuild()")
        report("rollups", 1, 1)
        database.execute_sql("SET LOCAL cloutsy.niche_refs = 'on'")
        database.execute_sql("SELECT cloutsy_niche_refs_rebuild()")
        report("niche refs", 1, 1)
    return DemoResult(**{table: len(rows["id"]) for table, _, rows in loads})


# --- COPY ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _bulk_load(rows: dict[str, int], report: Progress) -> Iterator[None]:
    """Drop secondary indexes and foreign keys of tables about to (at least) double; restore after.

    PostgreSQL's own advice for populating a database: building an index once over
    sorted data, and checking a foreign key with one join, beat maintaining them row by
    row (100k influencers: ~8 s instead of ~16 s). Both are rebuilt from their own
    definitions inside the same transaction, so a failure rolls everything back.
    Small loads into big tables keep their indexes: rebuilding those would cost more.
    """
    existing = _row_counts(rows)
    rebuild = [t for t, n in rows.items() if n >= max(BULK_THRESHOLD, existing[t])]
    saved: list[str] = []
    for table in rebuild:
        for name, create in database.execute_sql(SECONDARY_INDEXES, (table,)).fetchall():
            database.execute_sql(f"DROP INDEX {name}")
            saved.append(create)
        for name, definition in database.execute_sql(FOREIGN_KEYS, (table,)).fetchall():
            database.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            saved.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    yield
    if saved:
        database.execute_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for done, statement in enumerate(saved, start=1):
        database.execute_sql(statement)
        report("indexes", done, len(saved))


BULK_THRESHOLD = 10_000
PLANNER_COLUMNS = {
    "influencers": ("id", "is_active", "is_phone_verified", "created_at"),
    "brands": ("id", "is_active", "is_phone_verified", "is_profile_completed", "created_at"),
    "influencer_niches": ("id", "influencer_id", "niche_id"),
    "brand_niches": ("id", "brand_id", "niche_id"),
}
# Indexes that no constraint owns (a primary key stays), with the statement that recreates each.
SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i
 WHERE i.indrelid = %s::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
 ORDER BY 1
"""
FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY 1
"""


def _sealers(table: str) -> dict[str, tuple[str, Callable[[list[Any]], list[Any]]]]:
    """COPY column -> (source column, batch transform): PII encrypted, digests computed.

    Applied a batch at a time as COPY reads (`_CsvStream`), so the encryption overlaps the
    server's parsing on the other core instead of running before it.
    """
    if table not in PII_COLUMNS:
        return {}
    ring = crypto.keyring()
    sealers: dict[str, tuple[str, Callable[[list[Any]], list[Any]]]] = {
        column: (column, functools.partial(ring.encrypt_many, table, column))
        for column in PII_COLUMNS[table]
    }
    for column, digest_column in DIGEST_COLUMNS.items():
        sealers[digest_column] = (column, functools.partial(_digests, column))
    return sealers


def _digests(column: str, values: list[Any]) -> list[Any]:
    return [digest_of(column, v) for v in values]


def _row_counts(tables: Iterable[str]) -> dict[str, int]:
    return {t: int(database.execute_sql(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def _copy(
    table: str,
    columns: Sequence[str],
    data: dict[str, Any],
    report: Progress,
    sealers: dict[str, tuple[str, Callable[[list[Any]], list[Any]]]] | None = None,
) -> None:
    """COPY `columns` of `data` into `table`, reporting progress as the server reads.

    `sealers` adds or replaces columns by a transform of a source column, per batch
    (the PII codec: ciphertext and blind indexes go straight into COPY).
    """
    sealers = sealers or {}
    columns = [*columns, *(c for c in sealers if c not in columns)]
    series = [_column(data[sealers[c][0] if c in sealers else c]) for c in columns]
    transforms = [sealers[c][1] if c in sealers else None for c in columns]
    total = len(series[0])
    report(table, 0, total)
    if total == 0:
        return
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    stream = _CsvStream(series, lambda done: report(table, done, total), transforms)
    database.cursor().copy_expert(sql, stream)


class _CsvStream:
    """What COPY reads from: rows become CSV a batch at a time, as the server asks for more.

    Formatting the next batch while the server parses the last uses both cores, and
    the whole table never sits in memory as one string.
    """

    BATCH = 5_000

    def __init__(
        self,
        series: list[list[Any]],
        on_batch: Callable[[int], None],
        transforms: Sequence[Callable[[list[Any]], list[Any]] | None] = (),
    ) -> None:
        self._series = series
        self._transforms = list(transforms) or [None] * len(series)
        self._total = len(series[0])
        self._done = 0
        self._on_batch = on_batch

    def read(self, size: int = -1) -> str:
        if self._done >= self._total:
            return ""
        lo, hi = self._done, min(self._done + self.BATCH, self._total)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            zip(
                *(
                    t(s[lo:hi]) if t is not None else s[lo:hi]
                    for s, t in zip(self._series, self._transforms, strict=True)
                ),
                strict=True,
            )
        )
        self._done = hi
        self._on_batch(hi)
        return buffer.getvalue()

    def readline(self, size: int = -1) -> str:  # psycopg2 only calls read(); kept for the protocol
        return self.read(size)


def _column(values: Any) -> list[Any]:
    """A column as COPY-ready Python values: booleans as t/f, None stays empty (NULL)."""
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return np.where(values, "t", "f").tolist()
    return values if isinstance(values, list) else list(values)
