"""Prometheus metrics (prometheus-client), correct across server worker processes.

Under `invoke serve`, `PROMETHEUS_MULTIPROC_DIR` is set (cloutsy/serving.py) and every
worker writes to shared files that /metrics aggregates; pool gauges are summed
over live workers. Without it (tests, a single process) the default registry is used.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Literal, TypedDict

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Mode(TypedDict, total=False):
    """How a gauge's per-worker values combine; given only when the workers share files."""

    multiprocess_mode: Literal["livesum", "livemostrecent", "livemax", "livemin"]


# The `method` label takes these values and OTHER: a made-up method must not add series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

REQUESTS = Counter(
    "cloutsy_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "cloutsy_http_request_duration_seconds",
    "Request latency by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter(
    "cloutsy_http_errors_total",
    "Error responses by route template and error code",
    ["route", "code"],
)
RATE_LIMITED = Counter(
    "cloutsy_rate_limited_total",
    "Requests refused with 429 by an abuse limit, by limit name",
    ["limit"],
)
QUERIES = Counter("cloutsy_db_queries_total", "SQL statements executed")
QUERY_TIME = Histogram(
    "cloutsy_db_query_duration_seconds", "SQL statement duration", buckets=QUERY_BUCKETS
)
_pool_mode: _Mode = {"multiprocess_mode": "livesum"} if MULTIPROCESS else {}
POOL_MAX = Gauge("cloutsy_db_pool_max", "Pool size (summed over workers)", **_pool_mode)
POOL_IN_USE = Gauge("cloutsy_db_pool_in_use", "Pooled connections in use", **_pool_mode)
POOL_IDLE = Gauge("cloutsy_db_pool_idle", "Pooled connections idle", **_pool_mode)
# Sizes are the same figure whichever worker read it: the newest reading wins.
_size_mode: _Mode = {"multiprocess_mode": "livemostrecent"} if MULTIPROCESS else {}
DATABASE_SIZE = Gauge(
    "cloutsy_database_size_bytes", "Size of the database on disk (pg_database_size)", **_size_mode
)
TABLE_SIZE = Gauge(
    "cloutsy_table_size_bytes",
    "Table size on disk: heap, indexes and TOAST (pg_total_relation_size)",
    ["table"],
    **_size_mode,
)
TABLE_ROWS = Gauge(
    "cloutsy_table_rows_estimate",
    "Estimated rows per table (pg_class.reltuples, kept by autovacuum)",
    ["table"],
    **_size_mode,
)
# The catalogue is read at most once a minute per worker: a scrape never scans a table.
SIZE_INTERVAL_S = 60.0
_sizes_lock = threading.Lock()
_sizes_read_at: list[float] = []

# Read replicas (CONTRACT §10): each worker measures them; the worst figure is shown.
_worst: _Mode = {"multiprocess_mode": "livemax"} if MULTIPROCESS else {}
_least: _Mode = {"multiprocess_mode": "livemin"} if MULTIPROCESS else {}
REPLICA_UP = Gauge("cloutsy_db_replica_up", "1 when the replica answers", ["replica"], **_least)
REPLICA_LAG = Gauge(
    "cloutsy_db_replica_lag_seconds",
    "How far the replica is behind the primary (-1 when unknown)",
    ["replica"],
    **_worst,
)
READS = Counter(
    "cloutsy_db_public_reads_total", "Public reads by the server that answered", ["target"]
)


def observe_replica(name: str, up: bool, lag_s: float | None) -> None:
    """Publish one replica's state (installed as the replica monitor's observer)."""
    REPLICA_UP.labels(name).set(1 if up else 0)
    REPLICA_LAG.labels(name).set(-1 if lag_s is None else lag_s)


def observe_read(target: str) -> None:
    """Count one public read on "primary" or "replica"."""
    READS.labels(target).inc()


def observe_query(sql: str, params: Any, seconds: float) -> None:
    """Count one SQL statement and its duration (installed as the pool's query observer)."""
    QUERIES.inc()
    QUERY_TIME.observe(seconds)


# Each labelled series, looked up once: `labels()` builds a key and takes a lock on every
# call, ~10 us of a request's ~120 us of Python (issue 14). Routes, methods, statuses and
# codes are finite, so these maps stay small.
_requests: dict[tuple[str, str, int], Any] = {}
_latency: dict[tuple[str, str], Any] = {}


def observe_request(route: str, method: str, status: int, seconds: float, code: str | None) -> None:
    """Record one finished request."""
    method = method if method in METHODS else "OTHER"
    key = (route, method, status)
    counter = _requests.get(key)
    if counter is None:
        counter = _requests[key] = REQUESTS.labels(route, method, str(status))
    counter.inc()
    latency = _latency.get(key[:2])
    if latency is None:
        latency = _latency[key[:2]] = LATENCY.labels(route, method)
    latency.observe(seconds)
    if code is not None:
        ERRORS.labels(route, code).inc()


def rate_limited(limit: str) -> None:
    """Count one request refused by the abuse limit `limit`."""
    RATE_LIMITED.labels(limit).inc()


def sample_pool(stats: dict[str, int]) -> None:
    """Publish this process's pool figures."""
    POOL_MAX.set(stats["max"])
    POOL_IN_USE.set(stats["inUse"])
    POOL_IDLE.set(stats["idle"])


def start_pool_sampler(read_stats, interval: float = 1.0) -> threading.Thread:  # noqa: ANN001
    """Sample the pool every `interval` s in a daemon thread (no per-request cost)."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            sample_pool(read_stats())

    sample_pool(read_stats())

    thread = threading.Thread(target=loop, name="pool-sampler", daemon=True)
    thread.start()
    return thread


def sample_sizes(read_sizes, now: float | None = None) -> bool:  # noqa: ANN001
    """Publish the database and table sizes if the last reading is a minute old.

    `read_sizes()` returns `cloutsy.storage.Sizes` (the caller provides the connection).
    Returns True when the catalogue was read. A failed read keeps the previous figures.
    """
    moment = time.monotonic() if now is None else now
    with _sizes_lock:
        if _sizes_read_at and moment - _sizes_read_at[-1] < SIZE_INTERVAL_S:
            return False
        _sizes_read_at[:] = [moment]
    sizes = read_sizes()
    DATABASE_SIZE.set(sizes.database_bytes)
    for table in sizes.tables:
        TABLE_SIZE.labels(table.table).set(table.total_bytes)
        TABLE_ROWS.labels(table.table).set(table.rows_estimate)
    return True


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
