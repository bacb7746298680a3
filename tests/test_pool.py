"""The pool: its figures, a clear error when exhausted, and recovery after a real server restart."""

import logging
import threading
import time

import pytest
from playhouse.pool import MaxConnectionsExceeded

from cloutsy import embedded
from cloutsy.config import load_settings
from cloutsy.db import PooledDatabase, connect_params, connection_url, wait_for_database
from cloutsy.errors import Unavailable
from tests.helpers import Background, run_together, wait_until


def private_pool(url, **overrides):
    settings = load_settings().with_overrides(**overrides)
    params = connect_params(url, settings)
    return PooledDatabase(
        params.pop("database"),
        max_connections=settings.pool_max,
        stale_timeout=settings.pool_stale,
        timeout=settings.pool_timeout or None,
        autoconnect=False,
        **params,
    )


def test_pool_figures_count_connections_in_use_and_idle(pool):
    before = pool.pool_stats()
    assert before["max"] == 5
    with pool.connection_context():
        during = pool.pool_stats()
        assert during["inUse"] == before["inUse"] + 1
    after = pool.pool_stats()
    assert after["inUse"] == before["inUse"]
    assert after["idle"] >= 1


def test_an_exhausted_pool_waits_then_fails_with_a_clear_error(pool, settings):
    small = private_pool(connection_url(settings), pool_max=2, pool_timeout=0.5)
    release = threading.Event()

    def hold():
        small.connect()
        release.wait(30)
        small.close()

    holders = [Background(hold) for _ in range(2)]
    wait_until(lambda: small.pool_stats()["inUse"] == 2, what="both connections checked out")
    started = time.monotonic()
    with pytest.raises(MaxConnectionsExceeded, match="Max connections exceeded"):
        small.connect()
    # The subject here is the pool's own timeout (0.5 s): measured, not synchronised on.
    waited = time.monotonic() - started
    assert 0.4 <= waited < 1.4
    release.set()
    for holder in holders:
        holder.result()
    # Once load drops the pool serves again.
    with small.connection_context():
        assert small.execute_sql("SELECT 1").fetchone() == (1,)
    small.close_all()


def test_every_pooled_connection_works_after_a_server_restart(throwaway_server):
    uri = embedded.server_uri(throwaway_server)
    db = private_pool(uri, pool_max=3)
    # Fill the pool: three connections, all returned idle.
    run_together(*[lambda: _query(db)] * 3)
    # A connection checked out across the restart: its next query must still succeed.
    db.connect()
    assert db.execute_sql("SELECT 1").fetchone() == (1,)
    embedded.stop(throwaway_server, "fast")
    embedded.start(throwaway_server)
    assert db.execute_sql("SELECT 2").fetchone() == (2,)
    db.close()
    # And every idle connection in the pool was replaced at checkout.
    for _ in range(5):
        _query(db)
    db.close_all()


def _query(db):
    with db.connection_context():
        assert db.execute_sql("SELECT 1").fetchone() == (1,)


def test_wait_for_database_retries_then_fails_with_one_line(throwaway_server, monkeypatch):
    uri = embedded.server_uri(throwaway_server)
    embedded.stop(throwaway_server, "fast")
    db = private_pool(uri, pool_max=1)
    monkeypatch.setattr("cloutsy.db.current", lambda: db)
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        wait_for_database(timeout=1.0)
    assert time.monotonic() - started < 3  # the subject is the timeout: it gives up in time
    assert "not reachable" in err.value.message and "\n" not in err.value.message.strip()


def test_wait_for_database_succeeds_when_the_server_comes_up_late(
    throwaway_server, monkeypatch, caplog
):
    uri = embedded.server_uri(throwaway_server)
    embedded.stop(throwaway_server, "fast")
    db = private_pool(uri, pool_max=1)
    monkeypatch.setattr("cloutsy.db.current", lambda: db)
    caplog.set_level(logging.INFO, logger="cloutsy.db")
    waiting = Background(lambda: wait_for_database(timeout=20))
    wait_until(lambda: "not ready; retrying" in caplog.text, what="a first failed attempt")
    embedded.start(throwaway_server)
    waiting.result()
    db.close_all()


def test_a_healthy_checkout_costs_no_round_trip(pool, settings, monkeypatch):
    db = private_pool(connection_url(settings), pool_max=1)
    _query(db)  # one idle connection in the pool now
    probes = []
    real = db._adapter.is_connection_closed
    monkeypatch.setattr(db._adapter, "is_connection_closed", lambda c: probes.append(c) or real(c))
    for _ in range(5):
        _query(db)
    assert probes == []
    db.close_all()


def test_a_connection_the_server_terminated_is_replaced_at_checkout(pool, settings):
    db = private_pool(connection_url(settings), pool_max=1)
    with db.connection_context():
        pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    # Terminated by a session of the same role (the suite's own role may not signal it).
    killer = private_pool(connection_url(settings), pool_max=1)
    with killer.connection_context():
        assert killer.execute_sql("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
        wait_until(lambda: killer.execute_sql(gone, (pid,)).fetchone()[0], what="the backend gone")
    killer.close_all()
    with db.connection_context():
        assert db.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid
    db.close_all()


def test_without_prepared_statements_a_role_lacking_the_timeout_is_reported(pool, settings):
    # The migrator has no statement_timeout of its own (migrations run long on purpose):
    # without startup options nothing sets one. (cloutsy_app has it on the role, §9.)
    unprepared = private_pool(connection_url(settings, "migrate"), prepared_statements=False)
    unprepared.use_prepared = False
    try:
        from cloutsy.db import role_warnings

        warnings = role_warnings(unprepared)
        assert any("statement_timeout" in w for w in warnings)
        assert role_warnings(pool) == []  # prepared statements on: the options carry it
    finally:
        unprepared.close_all()
