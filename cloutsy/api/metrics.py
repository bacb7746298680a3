"""Prometheus metrics (prometheus-client), correct across server worker processes.

Under `invoke serve`, `PROMETHEUS_MULTIPROC_DIR` is set (cloutsy/serving.py) and every
worker writes to shared files that /metrics aggregates; pool gauges are summed
over live workers. Without it (tests, a single process) the default registry is used.
"""

from __future__ import annotations

import os
import threading
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

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
_pool_mode = {"multiprocess_mode": "livesum"} if MULTIPROCESS else {}
POOL_MAX = Gauge("cloutsy_db_pool_max", "Pool size (summed over workers)", **_pool_mode)
POOL_IN_USE = Gauge("cloutsy_db_pool_in_use", "Pooled connections in use", **_pool_mode)
POOL_IDLE = Gauge("cloutsy_db_pool_idle", "Pooled connections idle", **_pool_mode)


def observe_query(seconds: float) -> None:
    """Count one SQL statement and its duration (installed as the pool's query observer)."""
    QUERIES.inc()
    QUERY_TIME.observe(seconds)


def observe_request(route: str, method: str, status: int, seconds: float, code: str | None) -> None:
    """Record one finished request."""
    method = method if method in METHODS else "OTHER"
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
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


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
