"""How fast the service's reads are, and why: the timing and EXPLAIN toolkit of the notebooks.

p50/p95/p99 of the key reads as the API runs them, with the statements each sends
(`cloutsy.db.QueryCounter`); ORM against hand-written SQL; eager loading against N+1;
a pooled checkout against a fresh connection; EXPLAIN ANALYZE of every statement, with
sequential scans over large tables flagged. Every timing stops at a time budget, so a
notebook cell answers in about a second whatever the database's size. Call
`analytics.use_analytics_database()` first; importing this module never imports the web layer.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
from peewee import prefetch

from cloutsy.db import QueryCounter, database
from cloutsy.models import Influencer, InfluencerNiche, Niche

LARGE_TABLE_ROWS = 10_000  # a sequential scan over more rows than this is flagged


@dataclass(frozen=True)
class Probe:
    """Typical arguments for the timed queries, read from the data they will run on."""

    influencer_id: int
    brand_id: int
    niche_id: int
    word: str
    after_id: int


def probe() -> Probe:
    """Pick a mid-table influencer and brand, the niche most picked lately, a common name word."""
    with database.connected():
        row = database.execute_sql("""
        SELECT (SELECT id FROM influencers WHERE is_active AND id >=
                   (SELECT max(id) / 2 FROM influencers) ORDER BY id LIMIT 1),
               (SELECT id FROM brands WHERE is_active AND id >=
                   (SELECT max(id) / 2 FROM brands) ORDER BY id LIMIT 1),
               (SELECT niche_id FROM (SELECT niche_id FROM influencer_niches
                                        ORDER BY id DESC LIMIT 10000) recent
                 GROUP BY niche_id ORDER BY count(*) DESC, niche_id LIMIT 1),
               (SELECT min(id) FROM niches WHERE is_active)
        """).fetchone()
        name = database.execute_sql(
            "SELECT name FROM influencers WHERE id = %s", (row[0],)
        ).fetchone()
    word = (re.findall(r"\w+", name[0].lower()) or ["a"])[0] if name else "a"
    return Probe(
        influencer_id=row[0] or 1,
        brand_id=row[1] or 1,
        niche_id=row[2] or row[3] or 1,
        word=word,
        after_id=row[0] or 1,
    )


TimedQuery = tuple[str, Callable[[Probe], object]]


def key_queries() -> list[TimedQuery]:
    """The service's key reads, as the API runs them (`cloutsy.queries`); one line each."""
    from cloutsy import queries as api  # lazily: importing the toolkit stays light

    return [
        ("get influencer", lambda p: api.get_influencer(p.influencer_id)),
        ("list influencers", lambda p: api.list_influencers()),
        ("list influencers by niche", lambda p: api.list_influencers(niche_ids=[p.niche_id])),
        ("search influencers", lambda p: api.list_influencers(q=p.word)),
        (
            "verified influencers, next page",
            lambda p: api.list_influencers(verified=True, after_id=p.after_id),
        ),
        ("get brand", lambda p: api.get_brand(p.brand_id)),
        ("list brands by niche", lambda p: api.list_brands(niche_ids=[p.niche_id])),
        ("list niches", lambda p: api.list_niches()),
    ]


def _percentiles(name: str, seconds: Sequence[float], **extra: Any) -> dict[str, Any]:
    ms = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "query": name,
        **extra,
        "runs": len(ms),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "mean_ms": float(ms.mean()),
    }


def _time(call: Callable[[], object], repeat: int, budget_s: float) -> list[float]:
    """Durations of up to `repeat` calls, stopping once `budget_s` is spent (at least one call).

    The budget keeps every timing function under a second on a large database; a
    slow query simply gets fewer runs (the `runs` column says how many).
    """
    out: list[float] = []
    stop = time.perf_counter() + budget_s
    while len(out) < repeat:
        started = time.perf_counter()
        call()
        finished = time.perf_counter()
        out.append(finished - started)
        if finished >= stop:
            break
    return out


def query_timings(
    repeat: int = 50, budget_s: float = 0.4, queries: Sequence[TimedQuery] | None = None
) -> pd.DataFrame:
    """p50/p95/p99 in ms of each key query (up to `repeat` runs), with its SQL statement count.

    A first, untimed run warms caches up and counts the statements a call sends (a
    PREPARE is left out: it happens once per connection, later calls only EXECUTE).
    """
    chosen = list(queries or key_queries())
    rows = []
    with database.connected():
        p = probe()
        for name, query in chosen:
            with QueryCounter(this_thread=True) as seen:
                query(p)
            statements = sum(not _is_prepare(sql) for sql, _ in seen.statements)
            timings = _time(functools.partial(query, p), repeat, budget_s / len(chosen))
            rows.append(_percentiles(name, timings, statements=statements))
    return pd.DataFrame(rows)


# ORM and hand-written SQL for the same three reads, of these (public) columns.

COMPARED_COLUMNS = (
    "id",
    "name",
    "username",
    "bio",
    "profile_image",
    "is_phone_verified",
    "created_at",
)


def _orm_influencer(influencer_id: int) -> dict[str, Any] | None:
    fields = [getattr(Influencer, c) for c in COMPARED_COLUMNS]
    query = Influencer.select(*fields).where(
        (Influencer.id == influencer_id) & Influencer.is_active
    )
    return query.dicts().first()


def _raw_influencer(influencer_id: int) -> dict[str, Any] | None:
    cursor = database.execute_sql(
        f"SELECT {', '.join(COMPARED_COLUMNS)} FROM influencers WHERE id = %s AND is_active",
        (influencer_id,),
    )
    row = cursor.fetchone()
    return dict(zip(COMPARED_COLUMNS, row, strict=True)) if row else None


def _orm_page(niche_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
    fields = [getattr(Influencer, c) for c in COMPARED_COLUMNS]
    query = Influencer.select(*fields).where(Influencer.is_active)
    if niche_id is not None:
        linked = InfluencerNiche.select(InfluencerNiche.influencer).where(
            InfluencerNiche.niche == niche_id
        )
        query = query.where(Influencer.id.in_(linked))
    rows: Any = query.order_by(Influencer.id.desc()).limit(limit).dicts()  # dicts, not models
    return list(rows)


def _raw_page(niche_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
    niche = (
        "AND a.id IN (SELECT influencer_id FROM influencer_niches WHERE niche_id = %(niche)s) "
        if niche_id is not None
        else ""
    )
    cursor = database.execute_sql(
        f"SELECT {', '.join(COMPARED_COLUMNS)} FROM influencers a WHERE a.is_active {niche}"
        "ORDER BY a.id DESC LIMIT %(limit)s",
        {"niche": niche_id, "limit": limit},
    )
    return [dict(zip(COMPARED_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def orm_vs_raw(repeat: int = 50, budget_s: float = 0.6) -> pd.DataFrame:
    """The same reads through peewee's ORM and as hand-written SQL: p50/p95/p99 in ms."""
    pairs: list[tuple[str, Callable[[Probe], object], Callable[[Probe], object]]] = [
        (
            "influencer by id",
            lambda p: _orm_influencer(p.influencer_id),
            lambda p: _raw_influencer(p.influencer_id),
        ),
        ("latest page", lambda p: _orm_page(None), lambda p: _raw_page(None)),
        ("page of a niche", lambda p: _orm_page(p.niche_id), lambda p: _raw_page(p.niche_id)),
    ]
    share = budget_s / (2 * len(pairs))
    rows = []
    with database.connected():
        p = probe()
        for name, orm, raw in pairs:
            for method, call in (("orm", orm), ("raw sql", raw)):
                call(p)  # warm up
                timings = _time(functools.partial(call, p), repeat, share)
                rows.append(_percentiles(name, timings, method=method))
    return pd.DataFrame(rows)


def _page_with_niches_lazy(limit: int) -> list[tuple[int, list[str]]]:
    """N+1 on purpose: each influencer's links, then each link's niche, fetched on access."""
    # Only the id: the analyst's role may not read PII columns (CONTRACT §9).
    page = Influencer.select(Influencer.id).where(Influencer.is_active)
    page = page.order_by(Influencer.id.desc())
    rows: Iterable[Any] = page.limit(limit)  # each row's niche_links is a backref
    return [(i.id, sorted(link.niche.name for link in i.niche_links)) for i in rows]


def _page_with_niches_eager(limit: int) -> list[tuple[int, list[str]]]:
    """prefetch() through the junction model: 3 queries whatever the page size."""
    page = Influencer.select(Influencer.id).where(Influencer.is_active)
    page = page.order_by(Influencer.id.desc())
    rows = prefetch(page.limit(limit), InfluencerNiche, Niche)
    return [(i.id, sorted(link.niche.name for link in i.niche_links)) for i in rows]


def eager_vs_lazy(page_size: int = 20, repeat: int = 20, budget_s: float = 0.4) -> pd.DataFrame:
    """A page of influencers with their niches: prefetch (constant queries) against N+1."""
    loads = (("eager (prefetch)", _page_with_niches_eager), ("lazy (N+1)", _page_with_niches_lazy))
    rows = []
    with database.connected():
        for method, load in loads:
            with QueryCounter(this_thread=True) as seen:
                load(page_size)
            timings = _time(functools.partial(load, page_size), repeat, budget_s / len(loads))
            name = f"page of {page_size} with niches"
            rows.append(_percentiles(name, timings, method=method, statements=seen.count))
    return pd.DataFrame(rows)


def pooled_vs_fresh(repeat: int = 50, budget_s: float = 0.5) -> pd.DataFrame:
    """`SELECT 1` on a pooled checkout against a new psycopg2 connection each time."""
    db = database.obj
    params = {"database": db.database, **db.connect_params}

    def pooled() -> None:
        with database.connection_context():
            database.execute_sql("SELECT 1").fetchone()

    def fresh() -> None:
        conn = psycopg2.connect(**params)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        finally:
            conn.close()

    # A thread of its own has no connection yet, so each pooled call is a real checkout
    # and check-in, even when the caller holds a connection (a notebook, a test).
    def pooled_timings() -> list[float]:
        pooled()  # warm up: the pool may have to open its first connection
        return _time(pooled, repeat, budget_s / 2)

    with ThreadPoolExecutor(max_workers=1) as worker:
        pooled_s = worker.submit(pooled_timings).result()
    rows = [
        _percentiles("SELECT 1", pooled_s, method="pooled"),
        _percentiles("SELECT 1", _time(fresh, repeat, budget_s / 2), method="fresh connection"),
    ]
    return pd.DataFrame(rows)


SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
EXECUTION_TIME = re.compile(r"Execution Time: ([\d.]+) ms")


def explain_plans(queries: Sequence[TimedQuery] | None = None) -> pd.DataFrame:
    """EXPLAIN (ANALYZE, BUFFERS) of every read statement each key query sends.

    A prepared statement is explained as the service runs it (`EXPLAIN EXECUTE`);
    `statement` then shows the prepared SQL.
    `seq_scans` names the tables read sequentially; `flagged` is True when one of
    them holds more than LARGE_TABLE_ROWS rows (an index is probably missing, or a
    whole-table aggregate deserves a cache).
    """
    rows = []
    sizes: dict[str, int] = {}
    with database.connected():
        p = probe()
        cursor = database.cursor()
        for name, query in queries or key_queries():
            with QueryCounter(this_thread=True) as seen:
                query(p)
            for sql, params in seen.statements:
                if not sql.lstrip().upper().startswith(("SELECT", "WITH", "EXECUTE")):
                    continue
                statement = cursor.mogrify(sql, params).decode()
                plan_rows = database.execute_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement)
                plan = "\n".join(r[0] for r in plan_rows.fetchall())
                scanned = sorted(set(SEQ_SCAN.findall(plan)))
                for table in scanned:
                    if table not in sizes:
                        sizes[table] = _row_count(table)
                timing = EXECUTION_TIME.search(plan)
                rows.append(
                    {
                        "query": name,
                        "statement": _statement_text(sql),
                        "execution_ms": float(timing.group(1)) if timing else float("nan"),
                        "seq_scans": ", ".join(scanned),
                        "flagged": any(sizes[t] > LARGE_TABLE_ROWS for t in scanned),
                        "plan": plan,
                    }
                )
    return pd.DataFrame(
        rows, columns=["query", "statement", "execution_ms", "seq_scans", "flagged", "plan"]
    )


def _is_prepare(sql: str) -> bool:
    return sql.lstrip()[:8].upper() == "PREPARE "


PREPARED_NAME = re.compile(r"\s*EXECUTE\s+(\w+)", re.IGNORECASE)


def _statement_text(sql: str) -> str:
    """The SQL on one line; for `EXECUTE name(...)`, the statement prepared under that name."""
    prepared = PREPARED_NAME.match(sql)
    if prepared:
        row = database.execute_sql(
            "SELECT statement FROM pg_prepared_statements WHERE name = %s",
            (prepared.group(1).lower(),),
        ).fetchone()
        if row:
            sql = row[0]
    return " ".join(sql.split())


def _row_count(table: str) -> int:
    exists = database.execute_sql("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    if not exists[0]:
        return 0  # a CTE or function scan, not a table
    return int(database.execute_sql(f'SELECT count(*) FROM "{table}"').fetchone()[0])
