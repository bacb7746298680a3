"""How big the database is, read from PostgreSQL's catalogue (never a table scan).

One place for the size figures that `/metrics` exposes and the growth notebook
draws: `pg_database_size`, and per table `pg_total_relation_size` (heap, indexes
and TOAST) with the planner's row estimate (`pg_class.reltuples`, kept current by
autovacuum/ANALYZE).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloutsy.db import current

TABLE_SIZES_SQL = """
SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
FROM pg_class c
WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace
ORDER BY c.relname
"""


@dataclass(frozen=True)
class TableSize:
    table: str
    total_bytes: int
    rows_estimate: int


@dataclass(frozen=True)
class Sizes:
    database_bytes: int
    tables: tuple[TableSize, ...]


def read_sizes() -> Sizes:
    """The database's size and each table's (the caller holds a connection)."""
    db = current()
    (database_bytes,) = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()
    tables = tuple(
        TableSize(str(name), int(size), int(rows))
        for name, size, rows in db.execute_sql(TABLE_SIZES_SQL).fetchall()
    )
    return Sizes(int(database_bytes), tables)
