"""Operations routes: /health, /metrics and /openapi.json."""

from __future__ import annotations

import time
from typing import Any

import bottle
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from cloutsy import migrations, replicas, storage
from cloutsy.api import metrics, openapi
from cloutsy.api.http import Api, json_body
from cloutsy.config import Settings
from cloutsy.db import current
from cloutsy.schemas import HealthOut


def health_report() -> tuple[int, dict[str, Any]]:
    """Ping the database (latency), read the pool, count pending migrations."""
    db = current()
    try:
        started = time.perf_counter()
        with db.connected():
            db.execute_sql("SELECT 1")
            latency = round((time.perf_counter() - started) * 1000, 3)
            pending = len(migrations.pending())
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
        summary="Database reachability, pool and migrations",
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
