"""What the notebooks call: growth, niche and query-timing figures as pandas DataFrames.

Every figure is computed by PostgreSQL (date_trunc, generate_series for empty
periods, GROUP BY) and only the small result crosses the wire; figures that would
need a scan of every account read the rollups the writes keep (migration 0005:
sign-ups per day, funnels, accounts per niche, per niche count and per niche pair),
so the functions answer in well under a second at 1,000,000 accounts and never
load a table into pandas. Each takes its own connection (or reuses the caller's), so a notebook
just calls `connect()` once and then the functions. Importing this module never
imports the web layer.

Periods are UTC; weeks start on Monday (ISO). Account counts per niche count active
accounts in active niches; sign-ups and funnels count every account that signed up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import psycopg2
from peewee import prefetch

from cloutsy import storage
from cloutsy.config import Settings, load_settings
from cloutsy.db import connection_url, database, init_database
from cloutsy.models import Influencer, InfluencerNiche, Niche
from cloutsy.queries import NICHE_COUNTS_FROM

PERIODS = {"day": "1 day", "week": "1 week", "month": "1 month"}
ACCOUNT_TABLES = {
    "influencer": ("influencers", "influencer_niches", "influencer_id"),
    "brand": ("brands", "brand_niches", "brand_id"),
}
LARGE_TABLE_ROWS = 10_000  # a sequential scan over more rows than this is flagged


def connect(environ: Mapping[str, str] | None = None) -> Settings:
    """Point the package at the analytics database unless already done: ANALYTICS_DATABASE_URL,
    else the first replica, else the primary (CONTRACT §3), so reports never load the primary
    once replicas exist."""
    settings = load_settings(environ)
    if database.obj is None:
        # As the analyst role (no PII, digest or secret column, §9), on ANALYTICS_DATABASE_URL
        # or the first replica; one server, no routing: the long reads stay where they went.
        url = connection_url(settings, "analytics")
        init_database(settings.with_overrides(replica_urls=()), url=url)
    return settings


init_from_env = connect


TIMESTAMP_OIDS = (1114, 1184)  # timestamp, timestamptz
FLOAT_OIDS = (700, 701, 1700)  # real, double precision, numeric


def _frame(sql: str, params: Any = None) -> pd.DataFrame:
    """Run `sql` and return its rows as a DataFrame with the query's column names.

    Timestamp and float columns are typed as such even when there are no rows or a
    value is NULL (a ratio over nothing), so `.dt`, formatting and plotting work on an
    empty database too.
    """
    with database.connected():
        cursor = database.execute_sql(sql, params)
        columns = [c[0] for c in cursor.description]
        frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    for column in cursor.description:
        if frame[column.name].dtype != object:
            continue
        if column.type_code in TIMESTAMP_OIDS:
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
        elif column.type_code in FLOAT_OIDS:
            frame[column.name] = pd.to_numeric(frame[column.name]).astype("float64")
    return frame


def _step(period: str) -> str:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return PERIODS[period]


# --- growth --------------------------------------------------------------------------------

# Sign-ups per period from the daily rollup (migration 0005: kept by triggers, equal to a
# recount); the range, the empty periods and the running totals (which include accounts
# older than the range) come from those counts. Days are UTC, as the session's periods.
SIGNUPS = """
WITH inf AS MATERIALIZED (
    SELECT date_trunc(%(period)s, day::timestamp AT TIME ZONE 'UTC') AS period,
           sum(signups) AS n
      FROM rollup_signups WHERE kind = 'influencer' GROUP BY 1 HAVING sum(signups) <> 0
), br AS MATERIALIZED (
    SELECT date_trunc(%(period)s, day::timestamp AT TIME ZONE 'UTC') AS period,
           sum(signups) AS n
      FROM rollup_signups WHERE kind = 'brand' GROUP BY 1 HAVING sum(signups) <> 0
), bounds AS MATERIALIZED (
    SELECT date_trunc(%(period)s, coalesce(%(start)s::timestamptz,
               least((SELECT min(period) FROM inf), (SELECT min(period) FROM br), now()))) AS lo,
           date_trunc(%(period)s, coalesce(%(end)s::timestamptz, now())) AS hi
), before AS (
    SELECT (SELECT coalesce(sum(n), 0) FROM inf WHERE period < lo) AS inf,
           (SELECT coalesce(sum(n), 0) FROM br WHERE period < lo) AS br
      FROM bounds
)
SELECT p.period,
       coalesce(i.n, 0) AS influencers,
       coalesce(b.n, 0) AS brands,
       (before.inf + sum(coalesce(i.n, 0)) OVER w)::bigint AS influencers_total,
       (before.br + sum(coalesce(b.n, 0)) OVER w)::bigint AS brands_total,
       p.period + %(step)s::interval <= now() AS complete
  FROM bounds
 CROSS JOIN before
 CROSS JOIN generate_series(bounds.lo, bounds.hi, %(step)s::interval) AS p(period)
  LEFT JOIN inf i ON i.period = p.period
  LEFT JOIN br b ON b.period = p.period
WINDOW w AS (ORDER BY p.period)
"""


def signups(
    period: str = "day",
    start: dt.date | dt.datetime | None = None,
    end: dt.date | dt.datetime | None = None,
) -> pd.DataFrame:
    """Sign-ups per period with running totals; periods without sign-ups appear as 0.

    Columns: period (start, UTC), influencers, brands, influencers_total,
    brands_total, complete (False for the period still under way). The range runs
    from the first sign-up (or `start`) to now (or `end`).
    """
    params = {"period": period, "step": _step(period), "start": start, "end": end}
    frame = _frame(SIGNUPS + " ORDER BY p.period", params)
    return frame.astype({"influencers": "int64", "brands": "int64", "complete": "bool"})


def growth(
    period: str = "week",
    start: dt.date | dt.datetime | None = None,
    end: dt.date | dt.datetime | None = None,
) -> pd.DataFrame:
    """Period-over-period growth (week-over-week, month-over-month) in %, complete periods only.

    A growth figure is empty (NaN) for the first period and when the previous period
    had no sign-ups. Without `start`, the first period is left out: the data enters
    it mid-way, so growth against it would be an artefact.
    """
    sql = f"""
    SELECT period, influencers, brands,
           (100.0 * (influencers - lag(influencers) OVER w)
                  / nullif(lag(influencers) OVER w, 0))::float8 AS influencers_growth_pct,
           (100.0 * (brands - lag(brands) OVER w) / nullif(lag(brands) OVER w, 0))::float8
               AS brands_growth_pct
      FROM (SELECT *, row_number() OVER (ORDER BY period) AS n FROM ({SIGNUPS}) s0) s
     WHERE complete AND (n > 1 OR %(start)s::timestamptz IS NOT NULL)
    WINDOW w AS (ORDER BY period)
     ORDER BY period
    """
    params = {"period": period, "step": _step(period), "start": start, "end": end}
    return _frame(sql, params).astype(
        {"influencers_growth_pct": "float64", "brands_growth_pct": "float64"}
    )


def verification_funnel() -> pd.DataFrame:
    """Signed up -> phone verified, for influencers and brands (every account that signed up)."""
    return _frame("""
    SELECT account_type, signed_up, phone_verified,
           round(100.0 * phone_verified / nullif(signed_up, 0), 1)::float8 AS verified_pct
      FROM (SELECT k.account_type, coalesce(sum(r.signups), 0)::bigint AS signed_up,
                   coalesce(sum(r.verified), 0)::bigint AS phone_verified, k.ord
              FROM (VALUES ('influencers', 'influencer', 1), ('brands', 'brand', 2))
                   AS k(account_type, kind, ord)
              LEFT JOIN rollup_signups r ON r.kind = k.kind
             GROUP BY k.account_type, k.ord) t
     ORDER BY ord
    """)


def profile_funnel() -> pd.DataFrame:
    """Brand signed up -> started its profile -> half filled -> profile completed.

    Steps count brands with at least 1, at least 6 of the 12 profile and document
    fields filled, and those the service marks completed (all 12).
    """
    # The rollup counts each brand's filled fields as it is written (migration 0005).
    return _frame("""
    WITH b AS (
        SELECT coalesce(sum(signups), 0)::bigint AS signed_up,
               coalesce(sum(profile_started), 0)::bigint AS started,
               coalesce(sum(profile_half), 0)::bigint AS half,
               coalesce(sum(profile_completed), 0)::bigint AS completed
          FROM rollup_signups WHERE kind = 'brand'
    )
    SELECT s.step, s.brands,
           round(100.0 * s.brands / nullif(b.signed_up, 0), 1)::float8 AS pct_of_signed_up
      FROM b, LATERAL (VALUES (1, 'signed up', b.signed_up),
                              (2, 'started profile', b.started),
                              (3, 'half complete', b.half),
                              (4, 'profile completed', b.completed)) AS s(ord, step, brands)
     ORDER BY s.ord
    """)


# --- storage -------------------------------------------------------------------------------


def storage_by_table() -> pd.DataFrame:
    """Each table's size on disk (heap + indexes + TOAST) and estimated rows, biggest first.

    Read from the catalogue (`cloutsy.storage`, the figures /metrics exposes): no table scan.
    """
    with database.connected():
        sizes = storage.read_sizes()
    frame = pd.DataFrame(
        [(t.table, t.total_bytes, t.rows_estimate) for t in sizes.tables],
        columns=["table", "total_bytes", "rows_estimate"],
    ).astype({"total_bytes": "int64", "rows_estimate": "int64"})
    frame["bytes_per_row"] = (
        frame["total_bytes"] / frame["rows_estimate"].where(lambda r: r > 0)
    ).astype("float64")
    return frame.sort_values("total_bytes", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class StorageForecast:
    """Where the database's size stands and where the measured growth takes it."""

    database_bytes: int
    table_bytes: int
    accounts: int
    bytes_per_account: float
    monthly_signups: float  # mean of the last complete months measured
    monthly_growth_pct: float  # median month-over-month growth of sign-ups
    projection: pd.DataFrame  # month (0 = now), accounts, database_bytes


def storage_forecast(months: int = 12, measured_months: int = 3) -> StorageForecast:
    """Bytes per account and the database size `months` out at the sign-up growth measured.

    Bytes per account = all tables' size / accounts (every table but the niche catalogue
    grows with accounts). Sign-ups per month = the mean of the last `measured_months`
    complete months, growing by the median month-over-month growth of the last six
    (0 when there is no history). The database's fixed overhead (catalogue) stays.
    """
    with database.connected():
        sizes = storage.read_sizes()
    table_bytes = sum(t.total_bytes for t in sizes.tables)
    monthly = signups("month")
    complete = monthly[monthly["complete"]]
    accounts = (
        int(monthly["influencers_total"].iloc[-1] + monthly["brands_total"].iloc[-1])
        if len(monthly)
        else 0
    )
    recent = (complete["influencers"] + complete["brands"]).tail(measured_months)
    rate = float(recent.mean()) if len(recent) else 0.0
    changes = (complete["influencers"] + complete["brands"]).tail(7).pct_change().dropna()
    changes = changes[np.isfinite(changes)]
    growth_pct = float(changes.median() * 100) if len(changes) else 0.0
    per_account = table_bytes / accounts if accounts else 0.0
    rows = []
    total = float(accounts)
    for month in range(months + 1):
        if month:
            total += rate * (1 + growth_pct / 100) ** month
        added = (total - accounts) * per_account
        rows.append((month, round(total), int(sizes.database_bytes + added)))
    projection = pd.DataFrame(rows, columns=["month", "accounts", "database_bytes"])
    return StorageForecast(
        database_bytes=sizes.database_bytes,
        table_bytes=table_bytes,
        accounts=accounts,
        bytes_per_account=per_account,
        monthly_signups=rate,
        monthly_growth_pct=growth_pct,
        projection=projection,
    )


# --- niches --------------------------------------------------------------------------------

# The same counts /niches serves (one definition of "active accounts per active niche").
PER_NICHE = (
    "SELECT n.id AS niche_id, n.name AS niche, n.slug,"
    " coalesce(ic.c, 0) AS influencers, coalesce(bc.c, 0) AS brands" + NICHE_COUNTS_FROM
)


def accounts_per_niche() -> pd.DataFrame:
    """Active influencers and brands per active niche (niches nobody picked show 0), most first."""
    return _frame(PER_NICHE + " ORDER BY influencers DESC, brands DESC, n.name")


def demand_supply() -> pd.DataFrame:
    """Brand demand against influencer supply per niche.

    supply_pct and demand_pct are each niche's share of all influencer and brand
    picks; demand_index = demand_pct / supply_pct (> 1: brands want more of this
    niche than creators offer); brands_per_100_influencers is the raw ratio.
    """
    return _frame(f"""
    SELECT niche_id, niche, slug, influencers, brands,
           round(100.0 * influencers / nullif(sum(influencers) OVER (), 0), 2)::float8
               AS supply_pct,
           round(100.0 * brands / nullif(sum(brands) OVER (), 0), 2)::float8 AS demand_pct,
           round((brands::numeric / nullif(sum(brands) OVER (), 0))
                 / nullif(influencers::numeric / nullif(sum(influencers) OVER (), 0), 0), 2)::float8
               AS demand_index,
           round(100.0 * brands / nullif(influencers, 0), 2)::float8 AS brands_per_100_influencers
      FROM ({PER_NICHE}) t
     ORDER BY demand_index DESC NULLS LAST, niche
    """).astype({"demand_index": "float64", "brands_per_100_influencers": "float64"})


def niches_per_account() -> pd.DataFrame:
    """How many niches each active account picked: accounts per count (0 included)."""
    return _frame("""
    WITH counts AS (
        SELECT kind, niches, sum(accounts) AS accounts FROM rollup_niche_counts
         GROUP BY kind, niches HAVING sum(accounts) <> 0
    ), span AS (
        SELECT generate_series(0, coalesce(max(niches), 0)) AS niches FROM counts
    )
    SELECT s.niches,
           coalesce(sum(c.accounts) FILTER (WHERE c.kind = 'influencer'), 0)::bigint
               AS influencers,
           coalesce(sum(c.accounts) FILTER (WHERE c.kind = 'brand'), 0)::bigint AS brands
      FROM span s LEFT JOIN counts c ON c.niches = s.niches
     GROUP BY s.niches ORDER BY s.niches
    """)


def niche_cooccurrence(account_type: str = "influencer") -> pd.DataFrame:
    """Square matrix: how many active accounts picked both niches (diagonal 0; niche names)."""
    if account_type not in ACCOUNT_TABLES:
        raise ValueError(f"account_type must be influencer or brand, got {account_type!r}")
    pairs = _frame(
        """
    WITH pairs AS MATERIALIZED (
        SELECT a, b, sum(accounts) AS c FROM rollup_niche_pairs
         WHERE kind = %(kind)s GROUP BY a, b HAVING sum(accounts) <> 0
    ), both_ways AS (
        SELECT a, b, c FROM pairs UNION ALL SELECT b, a, c FROM pairs
    )
    SELECT na.name AS niche, nb.name AS other, coalesce(p.c, 0)::bigint AS accounts
      FROM niches na CROSS JOIN niches nb
      LEFT JOIN both_ways p ON p.a = na.id AND p.b = nb.id
     WHERE na.is_active AND nb.is_active
     ORDER BY na.name, nb.name
    """,
        {"kind": account_type},
    )
    matrix = pairs.pivot(index="niche", columns="other", values="accounts")
    matrix.index.name, matrix.columns.name = "niche", None
    return matrix.astype("int64")


# --- query timings -------------------------------------------------------------------------


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
    from cloutsy import queries as api  # lazily: importing analytics stays light

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
            with count_statements() as seen:
                query(p)
            statements = sum(not _is_prepare(sql) for sql, _ in seen)
            timings = _time(functools.partial(query, p), repeat, budget_s / len(chosen))
            rows.append(_percentiles(name, timings, statements=statements))
    return pd.DataFrame(rows)


@contextlib.contextmanager
def count_statements() -> Iterator[list[tuple[str, Any]]]:
    """Record every (sql, params) this thread sends through the database while inside.

    peewee's own query log would do, but the service's redacting log filter rewrites
    those records, so the pool's `execute_sql` is wrapped for the duration instead.
    """
    db = database.obj
    seen: list[tuple[str, Any]] = []
    original = db.execute_sql
    thread = threading.get_ident()

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == thread:
            seen.append((sql, params))
        return original(sql, params, *args, **kwargs)

    db.execute_sql = execute_sql
    try:
        yield seen
    finally:
        del db.execute_sql  # back to the class's method


# ORM and hand-written SQL for the same three reads.

INFLUENCER_COLUMNS = (
    "id",
    "name",
    "username",
    "bio",
    "profile_image",
    "is_phone_verified",
    "created_at",
)


def _orm_influencer(influencer_id: int) -> dict[str, Any] | None:
    fields = [getattr(Influencer, c) for c in INFLUENCER_COLUMNS]
    query = Influencer.select(*fields).where(
        (Influencer.id == influencer_id) & Influencer.is_active
    )
    return query.dicts().first()


def _raw_influencer(influencer_id: int) -> dict[str, Any] | None:
    cursor = database.execute_sql(
        f"SELECT {', '.join(INFLUENCER_COLUMNS)} FROM influencers WHERE id = %s AND is_active",
        (influencer_id,),
    )
    row = cursor.fetchone()
    return dict(zip(INFLUENCER_COLUMNS, row, strict=True)) if row else None


def _orm_page(niche_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
    fields = [getattr(Influencer, c) for c in INFLUENCER_COLUMNS]
    query = Influencer.select(*fields).where(Influencer.is_active)
    if niche_id is not None:
        linked = InfluencerNiche.select(InfluencerNiche.influencer).where(
            InfluencerNiche.niche == niche_id
        )
        query = query.where(Influencer.id.in_(linked))
    rows = query.order_by(Influencer.id.desc()).limit(limit).dicts()
    return list(cast(Iterable[dict[str, Any]], rows))  # peewee's hints type .dicts() rows as models


def _raw_page(niche_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
    niche = (
        "AND a.id IN (SELECT influencer_id FROM influencer_niches WHERE niche_id = %(niche)s) "
        if niche_id is not None
        else ""
    )
    cursor = database.execute_sql(
        f"SELECT {', '.join(INFLUENCER_COLUMNS)} FROM influencers a WHERE a.is_active {niche}"
        "ORDER BY a.id DESC LIMIT %(limit)s",
        {"niche": niche_id, "limit": limit},
    )
    return [dict(zip(INFLUENCER_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


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
    # niche_links: the backref peewee adds to Influencer when the link model is defined.
    return [
        (i.id, sorted(link.niche.name for link in i.niche_links))  # type: ignore[attr-defined]
        for i in page.limit(limit)
    ]


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
            with count_statements() as seen:
                load(page_size)
            timings = _time(functools.partial(load, page_size), repeat, budget_s / len(loads))
            name = f"page of {page_size} with niches"
            rows.append(_percentiles(name, timings, method=method, statements=len(seen)))
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
            with count_statements() as seen:
                query(p)
            for sql, params in seen:
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
