"""cloutsy.analytics and cloutsy.timings on the hand-made dataset of tests/datasets.py."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys

import pytest

from cloutsy import analytics, timings

D = dt.date


def rows(frame, *columns):
    return [tuple(r) for r in frame[list(columns)].itertuples(index=False)]


def nan_or(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


# --- growth --------------------------------------------------------------------------------


def test_weekly_signups_fill_empty_weeks_and_keep_running_totals(data):
    frame = analytics.signups("week", start=D(2024, 1, 1), end=D(2024, 2, 5))
    assert [p.date() for p in frame["period"]] == [
        D(2024, 1, 1),
        D(2024, 1, 8),
        D(2024, 1, 15),
        D(2024, 1, 22),
        D(2024, 1, 29),
        D(2024, 2, 5),
    ]
    assert rows(frame, "influencers", "brands") == [(2, 1), (0, 0), (1, 1), (0, 0), (2, 0), (0, 1)]
    assert list(frame["influencers_total"]) == [2, 2, 3, 3, 5, 5]
    assert list(frame["brands_total"]) == [1, 1, 2, 2, 2, 3]
    assert frame["complete"].all()


def test_daily_and_monthly_signups(data):
    daily = analytics.signups("day", start=D(2024, 1, 1), end=D(2024, 1, 3))
    assert rows(daily, "influencers", "brands") == [(2, 0), (0, 1), (0, 0)]
    monthly = analytics.signups("month", start=D(2024, 1, 1), end=D(2024, 3, 1))
    assert [p.date() for p in monthly["period"]] == [D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)]
    assert rows(monthly, "influencers", "brands", "influencers_total", "brands_total") == [
        (3, 2, 3, 2),
        (2, 1, 5, 3),
        (0, 0, 5, 3),
    ]


def test_running_totals_count_accounts_before_the_range(data):
    frame = analytics.signups("week", start=D(2024, 1, 15), end=D(2024, 1, 22))
    assert rows(frame, "influencers", "influencers_total", "brands", "brands_total") == [
        (1, 3, 1, 2),
        (0, 3, 0, 2),
    ]


def test_default_range_runs_from_the_first_signup_to_the_current_period(db, data):
    frame = analytics.signups("month")
    now = db.execute_sql("SELECT date_trunc('month', now())").fetchone()[0]
    assert frame["period"].iloc[0].date() == D(2024, 1, 1)
    assert frame["period"].iloc[-1] == now
    assert not frame["complete"].iloc[-1]  # this month is still under way
    assert frame["influencers"].sum() == 5 and frame["brands"].sum() == 3


def test_month_over_month_growth(data):
    frame = analytics.growth("month", start=D(2024, 1, 1), end=D(2024, 3, 1))
    assert list(frame["influencers"]) == [3, 2, 0]
    growth = [nan_or(round(v, 2)) for v in frame["influencers_growth_pct"]]
    assert growth == [None, -33.33, -100.0]
    assert [nan_or(v) for v in frame["brands_growth_pct"]] == [None, -50.0, -100.0]


def test_week_over_week_growth_is_empty_after_a_week_without_signups(data):
    frame = analytics.growth("week", start=D(2024, 1, 1), end=D(2024, 1, 22))
    assert [nan_or(v) for v in frame["influencers_growth_pct"]] == [None, -100.0, None, -100.0]


def test_growth_without_start_leaves_out_the_partial_first_period(data):
    frame = analytics.growth("month", end=D(2024, 3, 1))
    assert [p.date() for p in frame["period"]] == [D(2024, 2, 1), D(2024, 3, 1)]
    assert [nan_or(v) for v in frame["influencers_growth_pct"]] == [None, -100.0]


def test_unknown_period_is_refused(data):
    with pytest.raises(ValueError, match="period"):
        analytics.signups("year")


def test_verification_funnel(data):
    frame = analytics.verification_funnel()
    assert rows(frame, "account_type", "signed_up", "phone_verified", "verified_pct") == [
        ("influencers", 5, 3, 60.0),
        ("brands", 3, 2, 66.7),
    ]


def test_profile_funnel(data):
    frame = analytics.profile_funnel()
    assert rows(frame, "step", "brands", "pct_of_signed_up") == [
        ("signed up", 3, 100.0),
        ("started profile", 2, 66.7),
        ("half complete", 2, 66.7),
        ("profile completed", 1, 33.3),
    ]


# --- niches --------------------------------------------------------------------------------


def test_accounts_per_niche_counts_active_accounts_and_keeps_empty_niches(db, data):
    frame = analytics.accounts_per_niche()
    active_niches = db.execute_sql("SELECT count(*) FROM niches WHERE is_active").fetchone()[0]
    assert len(frame) == active_niches == 24
    assert rows(frame.head(3), "slug", "influencers", "brands") == [
        ("fashion", 3, 1),
        ("beauty", 2, 1),  # the deactivated i4 does not count
        ("travel", 1, 1),
    ]
    gaming = frame[frame["slug"] == "gaming"].iloc[0]
    assert (gaming["influencers"], gaming["brands"]) == (0, 0)


def test_inactive_niches_are_left_out(db, data):
    db.execute_sql("UPDATE niches SET is_active = false WHERE slug = 'gaming'")
    assert "gaming" not in set(analytics.accounts_per_niche()["slug"])


def test_demand_against_supply(data):
    frame = analytics.demand_supply().set_index("slug")
    assert list(frame.index[:3]) == ["travel", "beauty", "fashion"]  # highest demand index first
    travel, beauty, fashion = (frame.loc[s] for s in ("travel", "beauty", "fashion"))
    assert (fashion.supply_pct, fashion.demand_pct, fashion.demand_index) == (50.0, 33.33, 0.67)
    assert (beauty.supply_pct, beauty.demand_pct, beauty.demand_index) == (33.33, 33.33, 1.0)
    assert (travel.supply_pct, travel.demand_pct, travel.demand_index) == (16.67, 33.33, 2.0)
    assert list(frame.loc[["fashion", "beauty", "travel"], "brands_per_100_influencers"]) == [
        33.33,
        50.0,
        100.0,
    ]
    gaming = frame.loc["gaming"]
    assert (gaming.supply_pct, gaming.demand_pct) == (0.0, 0.0)
    assert math.isnan(gaming.demand_index) and math.isnan(gaming.brands_per_100_influencers)


def test_niches_per_account(data):
    frame = analytics.niches_per_account()
    assert rows(frame, "niches", "influencers", "brands") == [
        (0, 1, 0),
        (1, 1, 1),
        (2, 1, 1),
        (3, 1, 0),
    ]


def test_niche_cooccurrence(data):
    matrix = analytics.niche_cooccurrence("influencer")
    assert matrix.shape == (24, 24)
    assert matrix.loc["Fashion", "Beauty"] == matrix.loc["Beauty", "Fashion"] == 2
    assert matrix.loc["Fashion", "Travel"] == matrix.loc["Beauty", "Travel"] == 1
    assert matrix.loc["Fashion", "Fashion"] == 0
    assert matrix.values.sum() == 2 * (2 + 1 + 1)  # nothing else
    brands = analytics.niche_cooccurrence("brand")
    assert brands.loc["Beauty", "Travel"] == 1 and brands.values.sum() == 2
    with pytest.raises(ValueError):
        analytics.niche_cooccurrence("agency")


def test_functions_reuse_the_callers_connection_and_transaction(db, data):
    analytics.verification_funnel()
    assert not db.is_closed() and db.in_transaction()


def test_importing_analytics_does_not_load_the_web_layer():
    code = "import sys, cloutsy.analytics; print('bottle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- query timings -------------------------------------------------------------------------

TIMING_COLUMNS = ["query", "runs", "p50_ms", "p95_ms", "p99_ms", "mean_ms"]


def assert_percentiles(frame, repeat):
    assert set(TIMING_COLUMNS) <= set(frame.columns)
    assert ((frame["runs"] >= 1) & (frame["runs"] <= repeat)).all()
    assert (frame["p50_ms"] > 0).all()
    assert (frame["p50_ms"] <= frame["p95_ms"]).all() and (frame["p95_ms"] <= frame["p99_ms"]).all()


def test_query_timings_of_the_key_queries(data):
    frame = timings.query_timings(repeat=5)
    assert_percentiles(frame, 5)
    assert len(frame) == len(timings.key_queries()) >= 3
    assert (frame["statements"] == 1).all()  # every key read is one statement


def test_a_timed_query_is_one_line_to_add(db, data):
    extra = [("count niches", lambda p: db.execute_sql("SELECT count(*) FROM niches").fetchone())]
    frame = timings.query_timings(repeat=3, queries=extra)
    assert list(frame["query"]) == ["count niches"] and frame["statements"].iloc[0] == 1


def test_orm_and_raw_sql_agree_and_are_both_timed(data):
    niche = data["fashion"]
    assert timings._orm_page(niche) == timings._raw_page(niche)
    assert [r["id"] for r in timings._orm_page(niche)] == [3, 2, 1]
    assert timings._orm_page(None) == timings._raw_page(None)
    assert timings._orm_influencer(1) == timings._raw_influencer(1)
    assert timings._orm_influencer(4) is None  # deactivated
    frame = timings.orm_vs_raw(repeat=3)
    assert_percentiles(frame, 3)
    assert sorted(set(frame["method"])) == ["orm", "raw sql"] and len(frame) == 6


def test_eager_loading_sends_three_statements_and_lazy_one_per_row(data):
    eager = timings._page_with_niches_eager(20)
    assert eager == timings._page_with_niches_lazy(20)
    assert eager[0] == (5, []) and eager[1] == (3, ["Beauty", "Fashion", "Travel"])
    frame = timings.eager_vs_lazy(page_size=20, repeat=3).set_index("method")
    # lazy: the page, each of 4 influencers' links, each of their 6 links' niche
    assert frame.loc["eager (prefetch)", "statements"] == 3
    assert frame.loc["lazy (N+1)", "statements"] == 1 + 4 + 6


def test_pooled_against_fresh_connections(db):
    frame = timings.pooled_vs_fresh(repeat=5)
    assert list(frame["method"]) == ["pooled", "fresh connection"]
    assert_percentiles(frame, 5)
    assert db.in_transaction()  # the test's own connection was left alone


def test_explain_plans_flag_sequential_scans_on_large_tables(db, data):
    db.execute_sql(
        "INSERT INTO influencers (name, username, email, phone, created_at) "
        "SELECT 'Bulk ' || g, 'bulk' || g, 'bulk' || g || '@example.com', "
        "'+9160' || lpad(g::text, 8, '0'), now() FROM generate_series(1, 10001) g"
    )
    db.execute_sql("ANALYZE influencers")
    queries = [
        ("by id", lambda p: db.execute_sql("SELECT name FROM influencers WHERE id = %s", (3,))),
        ("by bio", lambda p: db.execute_sql("SELECT count(*) FROM influencers WHERE bio = 'x'")),
    ]
    frame = timings.explain_plans(queries).set_index("query")
    assert not frame.loc["by id", "flagged"] and "Index Scan" in frame.loc["by id", "plan"]
    assert frame.loc["by bio", "flagged"] and frame.loc["by bio", "seq_scans"] == "influencers"
    assert "Buffers" in frame.loc["by bio", "plan"] and frame.loc["by bio", "execution_ms"] >= 0


def test_explain_plans_of_the_key_queries(data):
    frame = timings.explain_plans()
    assert set(frame["query"]) == {name for name, _ in timings.key_queries()}
    assert not frame["flagged"].any()  # a handful of rows: nothing is large
    assert frame["plan"].str.contains("Execution Time").all()
