"""Operations routes: /health, /metrics and /openapi.json."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import bottle
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from cloutsy import migrations, replicas, storage
from cloutsy.api import metrics, openapi
from cloutsy.api.endpoints import Api
from cloutsy.api.http import json_body
from cloutsy.config import Settings
from cloutsy.db import current
from cloutsy.schemas import HealthOut

# The schema check (pending migrations + a diff of the models against the catalogue) costs
# a few catalogue queries: each process runs it at most once per SCHEMA_CHECK_S, so a load
# balancer polling /health several times a second adds nothing measurable.
SCHEMA_CHECK_S = 5.0


_local = threading.local()


class _QuietCheck(logging.Filter):
    """Keep the schema check's catalogue queries out of the development query log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_local, "checking", False)


logging.getLogger("peewee").addFilter(_QuietCheck())


class SchemaCheck:
    """Pending migrations and model/database drift, recomputed at most every `ttl` seconds."""

    def __init__(self, ttl: float = SCHEMA_CHECK_S) -> None:
        self.ttl = ttl
        self.lock = threading.Lock()
        self.checked = float("-inf")
        self.pending = 0
        self.reason: str | None = None

    def get(self) -> tuple[int, str | None]:
        """(pending migrations, why the schema is not what the code expects or None).

        The caller holds a connection. One thread refreshes; the others read the last result.
        """
        if time.monotonic() - self.checked >= self.ttl and self.lock.acquire(blocking=False):
            _local.checking = True
            try:
                waiting = migrations.pending()
                reasons = []
                if waiting:
                    reasons.append(f"{len(waiting)} migration(s) pending: {', '.join(waiting)}")
                else:
                    drift = migrations.drift()
                    if drift:
                        reasons.append(
                            "the schema differs from the models: " + drift_summary(drift)
                        )
                self.pending, self.reason = len(waiting), "; ".join(reasons) or None
                self.checked = time.monotonic()
            finally:
                _local.checking = False
                self.lock.release()
        return self.pending, self.reason


def drift_summary(drift: Any) -> str:
    """One line from a SchemaDiff: what is missing or extra, at most a few names."""
    text = " ".join(str(drift).split())
    return text if len(text) <= 200 else text[:197] + "..."


schema_check = SchemaCheck()


def health_report() -> tuple[int, dict[str, Any]]:
    """Ping the database (latency), read the pool, check migrations and schema (cached)."""
    db = current()
    try:
        started = time.perf_counter()
        with db.connected():
            db.execute_sql("SELECT 1")
            latency = round((time.perf_counter() - started) * 1000, 3)
            pending, reason = schema_check.get()
    except (OperationalError, InterfaceError, MaxConnectionsExceeded):
        if db.connection_is_dead():
            db.discard_connection()
        database = {"ok": False, "pool": db.pool_stats()}
        return 503, {"status": "unavailable", "database": database}
    database = {
        "ok": True,
        "latencyMs": latency,
        "pool": db.pool_stats(),
        "pendingMigrations": pending,
    }
    if reason:
        return 503, {"status": "degraded", "reason": reason, "database": database}
    return 200, {"status": "ok", "database": database}


def replica_report() -> dict[str, Any]:
    """Each replica's state and lag (CONTRACT §10); empty without replicas.

    Kept apart from `health_report`: a replica down or lagging does not make the service
    unhealthy (its reads go to the primary), it is only shown.
    """
    if replicas.current is None:
        return {}
    return {"replicas": replicas.current.report()}


def register(api: Api, settings: Settings) -> None:
    @api.route(
        "GET",
        "/health",
        summary="Database reachability, pool and migrations (503 degraded: schema not current)",
        tag="operations",
        responses={200: HealthOut, 503: HealthOut},
        db=False,
    )
    def health() -> bytes:
        status, report = health_report()
        report.update(replica_report())
        if status == 503:
            bottle.response.set_header("Retry-After", "2")
        return json_body(report, status)

    @api.route(
        "GET",
        "/metrics",
        summary="Prometheus metrics (text format)",
        tag="operations",
        responses={200: None},
        db=False,
    )
    def prometheus() -> bytes:
        db = current()
        metrics.sample_pool(db.pool_stats())  # this process's figures, fresh
        try:
            with db.connected():
                metrics.sample_sizes(storage.read_sizes)
        except (OperationalError, InterfaceError, MaxConnectionsExceeded):
            # The database is down: /metrics still answers, with the last sizes read.
            if db.connection_is_dead():
                db.discard_connection()
        body, content_type = metrics.render()
        bottle.response.content_type = content_type
        return body

    document: dict[str, Any] = {}

    @api.route(
        "GET",
        "/openapi.json",
        summary="This API's OpenAPI 3.1 document",
        tag="operations",
        responses={200: None},
        db=False,
        cache="revalidate",
    )
    def openapi_json() -> bytes:
        if not document:  # built once, on first use: every route is registered by then
            document.update(openapi.build(api.endpoints))
        return json_body(document)
