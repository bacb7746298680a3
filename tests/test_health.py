"""/health tells the truth: 503 `degraded`, with the reason, while the schema is not the code's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cloutsy import migrations
from cloutsy.api import ops
from tests.conftest import truncate_all
from tests.engines import start_server
from tests.helpers import ROOT, http, wait_until


@pytest.fixture
def fresh_check(monkeypatch):
    """A schema check that recomputes on every request (the app caches it for 5 s)."""
    monkeypatch.setattr(ops, "schema_check", ops.SchemaCheck(ttl=0))


def test_health_is_ok_when_the_schema_matches(client, fresh_check):
    res = client.get("/health")
    assert res.status_int == 200
    assert res.json["status"] == "ok"
    assert "reason" not in res.json


def test_a_schema_differing_from_the_models_is_degraded(client, db, fresh_check):
    db.execute_sql("ALTER TABLE influencers DROP COLUMN bio CASCADE")  # rolled back after
    res = client.get("/health", expect_errors=True)
    assert res.status_int == 503
    assert res.headers["Retry-After"] == "2"
    assert res.json["status"] == "degraded"
    assert res.json["reason"].startswith("the schema differs from the models:")
    assert "bio" in res.json["reason"]
    assert res.json["database"]["ok"] is True


def test_the_check_runs_at_most_once_per_interval(db, monkeypatch):
    check = ops.SchemaCheck(ttl=60)
    calls = []
    monkeypatch.setattr(ops.migrations, "pending", lambda: calls.append(1) or [])
    monkeypatch.setattr(ops.migrations, "drift", lambda: None)
    for _ in range(50):
        assert check.get() == (0, None)
    assert len(calls) == 1


def invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for_health(url: str, status: int, within: float):
    """(status, headers, body) of the first /health answer with `status`."""

    def answer():
        code, headers, body = http("GET", f"{url}/health")
        return code == status and (code, headers, json.loads(body))

    return wait_until(answer, within, f"/health to answer {status}")


@pytest.mark.slow
def test_a_rollback_under_a_running_server_turns_health_degraded_and_back(pool, tmp_path):
    truncate_all(pool)
    server = start_server(tmp_path)
    try:
        assert wait_for_health(server.url, 200, 1)[0] == 200
        with pool.connection_context():
            latest = [m.name for m in migrations.status() if m.applied][-1]
        reverted = invoke("migrate.rollback", "--yes")
        assert reverted.returncode == 0, reverted.stdout + reverted.stderr
        # Each worker recomputes at most every SCHEMA_CHECK_S seconds.
        code, headers, body = wait_for_health(server.url, 503, ops.SCHEMA_CHECK_S + 5)
        assert code == 503, body
        assert body["status"] == "degraded"
        assert body["reason"] == f"1 migration(s) pending: {latest}"
        assert body["database"]["pendingMigrations"] == 1
        assert headers["Retry-After"] == "2"

        # Within one more interval every worker says so, not only the one that looked first.
        def every_worker_says_so() -> bool:
            return all(http("GET", f"{server.url}/health")[0] == 503 for _ in range(6))

        wait_until(every_worker_says_so, ops.SCHEMA_CHECK_S + 5, "six 503 answers in a row")
        applied = invoke("migrate")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        code, _, body = wait_for_health(server.url, 200, ops.SCHEMA_CHECK_S + 5)
        assert (code, body["status"]) == (200, "ok")
    finally:
        server.stop()
        with pool.connection_context():
            migrations.apply()  # whatever happened above, leave the suite's schema in place
        truncate_all(pool)
