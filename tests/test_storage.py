"""Size and growth: /metrics reads the catalogue at most once a minute; the storage forecast."""

from __future__ import annotations

import re

import pytest

from cloutsy import analytics, storage
from cloutsy.api import metrics


def _sample(text: str, name: str, table: str | None = None) -> float:
    label = f'{{table="{table}"}}' if table else ""
    match = re.search(rf"^{name}{re.escape(label)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name}{label} missing from /metrics"
    return float(match.group(1))


def test_metrics_show_database_and_table_sizes(client, db):
    metrics._sizes_read_at.clear()
    db.execute_sql("ANALYZE niches")
    text = client.get("/metrics").text
    assert _sample(text, "cloutsy_database_size_bytes") > 1_000_000
    for table in ("influencers", "brands", "niches", "influencer_niches", "sessions"):
        assert _sample(text, "cloutsy_table_size_bytes", table) > 0
    (niches,) = db.execute_sql("SELECT count(*) FROM niches").fetchone()
    assert _sample(text, "cloutsy_table_rows_estimate", "niches") == niches


def test_sizes_are_read_from_the_catalogue_at_most_once_a_minute(db, queries):
    metrics._sizes_read_at.clear()
    with queries as q:
        assert metrics.sample_sizes(storage.read_sizes, now=1000.0) is True
    assert q.count == 2  # pg_database_size + one catalogue query, whatever the tables' size
    with queries as q:
        assert metrics.sample_sizes(storage.read_sizes, now=1059.0) is False
        assert metrics.sample_sizes(storage.read_sizes, now=1030.0) is False
    assert q.count == 0
    assert metrics.sample_sizes(storage.read_sizes, now=1060.5) is True


def test_table_sizes_never_scan_a_table(db):
    plan = "\n".join(r[0] for r in db.execute_sql("EXPLAIN " + storage.TABLE_SIZES_SQL))
    assert "influencers" not in plan and "pg_class" in plan


def test_storage_by_table(data, db):
    db.execute_sql("ANALYZE influencers")
    frame = analytics.storage_by_table()
    assert list(frame.columns) == ["table", "total_bytes", "rows_estimate", "bytes_per_row"]
    assert frame["total_bytes"].is_monotonic_decreasing
    row = frame.set_index("table").loc["influencers"]
    assert row.rows_estimate == 5
    assert row.bytes_per_row == pytest.approx(row.total_bytes / 5)


def test_storage_forecast_projects_the_measured_signups(data, db):
    # 8 accounts signed up in Jan-Feb 2024, none since: measured over every complete month.
    monthly = analytics.signups("month")
    complete = int(monthly["complete"].sum())
    forecast = analytics.storage_forecast(months=12, measured_months=complete)
    assert forecast.accounts == 8
    table_bytes = sum(t.total_bytes for t in storage.read_sizes().tables)
    assert forecast.bytes_per_account == pytest.approx(table_bytes / 8)
    assert forecast.monthly_signups == pytest.approx(8 / complete)
    assert forecast.monthly_growth_pct == 0.0  # no sign-ups month after month: no growth
    projection = forecast.projection
    assert list(projection["month"]) == list(range(13))
    assert projection["database_bytes"].iloc[0] == forecast.database_bytes
    added = 12 * 8 / complete
    assert projection["accounts"].iloc[-1] == round(8 + added)
    assert projection["database_bytes"].iloc[-1] == pytest.approx(
        forecast.database_bytes + added * forecast.bytes_per_account, abs=1
    )


def test_storage_forecast_on_an_empty_database(db):
    forecast = analytics.storage_forecast()
    assert forecast.bytes_per_account == 0.0
    assert len(forecast.projection) == 13
