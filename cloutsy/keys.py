"""PII key management (CONTRACT §9): make a key, count values per key, rotate while serving.

Rotation re-encrypts every PII value that is not under the first key of
CLOUTSY_DATA_KEYS. It walks each account table in id order, BATCH rows at a time, each
batch its own short transaction that locks only its rows (`FOR UPDATE`): the service
keeps reading and writing meanwhile, and no lock lives longer than one batch. A killed
run loses at most its open batch; run it again and it resumes (values already under
the current key are skipped). Once `status()` shows no value under an old key, that key
can be dropped from CLOUTSY_DATA_KEYS.
"""

from __future__ import annotations

import base64
import datetime as dt
import os

from psycopg2.extras import execute_values

from cloutsy import crypto
from cloutsy.db import database
from cloutsy.models import PII_COLUMNS
from cloutsy.progress import Progress

BATCH = 1000


def generate(key_id: str = "") -> str:
    """A new `id:base64` entry for CLOUTSY_DATA_KEYS (32 random bytes; id from today's date)."""
    key_id = key_id or "k" + dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def status() -> dict[str, dict[str, int]]:
    """Values per key id, per table: {table: {key id: count}} (NULLs are not values)."""
    counts: dict[str, dict[str, int]] = {}
    with database.connected():
        for table, columns in PII_COLUMNS.items():
            parts = " UNION ALL ".join(
                f"SELECT split_part({c}, ':', 1) AS k FROM {table} WHERE {c} IS NOT NULL"
                for c in columns
            )
            rows = database.execute_sql(
                f"SELECT k, count(*) FROM ({parts}) v GROUP BY k ORDER BY k"
            ).fetchall()
            counts[table] = {key: int(n) for key, n in rows}
    return counts


def _stale(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"({c} IS NOT NULL AND left({c}, %(n)s) <> %(prefix)s)" for c in columns)


def rotate(batch: int = BATCH, progress: Progress | None = None) -> int:
    """Re-encrypt every value not under the current key; return how many rows changed."""
    ring = crypto.keyring()
    prefix = ring.current_id + ":"
    report = progress or (lambda table, done, total: None)
    changed = 0
    with database.connected():
        for table, columns in PII_COLUMNS.items():
            where = _stale(columns)
            params = {"n": len(prefix), "prefix": prefix}
            total = database.execute_sql(
                f"SELECT count(*) FROM {table} WHERE {where}", params
            ).fetchone()[0]
            done, last = 0, 0
            report(table, 0, total)
            while True:
                with database.atomic():
                    rows = database.execute_sql(
                        f"SELECT id, {', '.join(columns)} FROM {table} "
                        f"WHERE id > %(last)s AND ({where}) ORDER BY id LIMIT %(batch)s FOR UPDATE",
                        {**params, "last": last, "batch": batch},
                    ).fetchall()
                    if not rows:
                        break
                    values = [
                        (
                            row[0],
                            *(
                                ring.encrypt(table, c, ring.decrypt(table, c, v))
                                if v is not None and not v.startswith(prefix)
                                else v
                                for c, v in zip(columns, row[1:], strict=True)
                            ),
                        )
                        for row in rows
                    ]
                    sets = ", ".join(f"{c} = v.{c}" for c in columns)
                    execute_values(
                        database.cursor(),
                        f"UPDATE {table} t SET {sets} FROM (VALUES %s) "
                        f"AS v(id, {', '.join(columns)}) WHERE t.id = v.id",
                        values,
                        template="(" + ", ".join(["%s"] + ["%s::text"] * len(columns)) + ")",
                        page_size=batch,
                    )
                last = rows[-1][0]
                done += len(rows)
                changed += len(rows)
                report(table, min(done, total), total)
    return changed
