"""What the notebooks report: growth, storage and niche figures as pandas DataFrames.

Every figure is computed by PostgreSQL (date_trunc, generate_series for empty
periods, GROUP BY) and only the small result crosses the wire; figures that would
need a scan of every account read the rollups the writes keep (migration 0005:
sign-ups per day, funnels, accounts per niche, per niche count and per niche pair),
so the functions answer in well under a second at 1,000,000 accounts and never
load a table into pandas. Each takes its own connection (or reuses the caller's), so a notebook
just calls `use_analytics_database()` once and then the functions (here, and the query
timings of `cloutsy.timings`). Importing this module never imports the web layer.

Periods are UTC; weeks start on Monday (ISO). Account counts per niche count active
accounts in active niches; sign-ups and funnels count every account that signed up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cloutsy import storage
from cloutsy.config import Settings, load_settings
from cloutsy.db import connection_url, database, init_database
from cloutsy.kinds import KINDS
from cloutsy.queries import NICHE_COUNTS_FROM

PERIODS = {"day": "1 day", "week": "1 week", "month": "1 month"}


def use_analytics_database(environ: Mapping[str, str] | None = None) -> Settings:
    """Point the package's pool at the analytics database unless one is set up; its settings.

    ANALYTICS_DATABASE_URL, else the first replica, else the primary (CONTRACT §3), so
    reports never load the primary once replicas exist. No connection is opened here:
    each figure takes one from the pool.
    """
    settings = load_settings(environ)
    if database.obj is None:
        # As the analyst role (no PII, digest or secret column, §9), on ANALYTICS_DATABASE_URL
        # or the first replica; one server, no routing: the long reads stay where they went.
        url = connection_url(settings, "analytics")
        init_database(settings.with_overrides(replica_urls=()), url=url)
    return settings


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
    if account_type not in KINDS:
        raise ValueError(f"account_type must be {' or '.join(KINDS)}, got {account_type!r}")
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
