"""Reliability, proven by breaking things for real: outages, timeouts, exhaustion, crashes, SIGTERM.

Every test here runs `invoke serve` against a private embedded PostgreSQL it may stop,
crash and restart (the `throwaway_server` fixture), never the suite's own database.
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import json
import time

import psycopg2
import pytest

from cloutsy import embedded
from tests.engines import start_server
from tests.helpers import Background, http, influencer_body, lock_waiters, wait_until

pytestmark = pytest.mark.slow


person = functools.partial(influencer_body, tag="durable", phone_prefix="90000")


@pytest.fixture
def private_server(throwaway_server, tmp_path):
    """A live service (1 worker) on a private PostgreSQL; yields (server, pgdata, uri)."""
    uri = embedded.server_uri(throwaway_server)
    server = start_server(
        tmp_path,
        DATABASE_URL=uri,
        CLOUTSY_WORKERS="1",
        CLOUTSY_STATEMENT_TIMEOUT_MS="1000",
        POSTGRES_POOL_TIMEOUT="2",
    )
    yield server, throwaway_server, uri
    server.stop()


def timed(method: str, url: str, body: dict | None = None):
    started = time.monotonic()
    status, headers, raw = http(method, url, body)
    return status, headers, raw, time.monotonic() - started


def test_outage_answers_503_fast_then_recovers_with_no_failed_request(private_server):
    server, pgdata, _ = private_server
    base = server.url
    assert http("POST", f"{base}/influencers", person(1))[0] == 201
    # Warm every pooled connection so that all of them go stale in the outage.
    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: http("GET", f"{base}/influencers?limit=5"), range(40)))

    embedded.stop(pgdata, "fast")
    endpoints = [
        ("GET", "/niches"),
        ("GET", "/niches/fashion"),
        ("GET", "/influencers"),
        ("GET", "/influencers/1"),
        ("GET", "/brands"),
        ("POST", "/influencers", person(2)),
    ]
    for method, path, *body in endpoints:
        status, headers, raw, took = timed(method, f"{base}{path}", *(body or [None]))
        assert status == 503, (path, raw)
        assert json.loads(raw)["error"]["code"] == "unavailable"
        assert headers["Retry-After"]
        assert took < 2.0, (path, took)
    status, _, raw, took = timed("GET", f"{base}/health")
    assert status == 503 and json.loads(raw)["status"] == "unavailable" and took < 2.0
    assert server.process.poll() is None  # the process stays up

    embedded.start(pgdata)
    wait_until(lambda: http("GET", f"{base}/health")[0] == 200, 5, "/health 200 after the restart")
    # From now on nothing may fail: every pooled connection must be usable.
    with futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: http("GET", f"{base}/influencers?limit=5")[0], range(80))
        )
    assert statuses == [200] * 80
    assert http("POST", f"{base}/influencers", person(3))[0] == 201


def _lock_influencers(uri: str):
    """A separate session holding an exclusive lock: every read of influencers must wait."""
    conn = psycopg2.connect(uri)
    cur = conn.cursor()
    cur.execute("BEGIN; LOCK TABLE influencers IN ACCESS EXCLUSIVE MODE")
    return conn


def test_a_slow_query_is_cut_by_the_statement_timeout_and_the_connection_stays_healthy(
    private_server,
):
    server, _, uri = private_server
    assert http("POST", f"{server.url}/influencers", person(1))[0] == 201
    blocker = _lock_influencers(uri)
    try:
        status, headers, raw, took = timed("GET", f"{server.url}/influencers/1")
        assert status == 503 and json.loads(raw)["error"]["code"] == "unavailable"
        assert 0.9 <= took < 3.0  # the subject is the 1 s statement timeout
    finally:
        blocker.rollback()
        blocker.close()
    # The same pooled connections serve normally afterwards.
    for _ in range(20):
        assert http("GET", f"{server.url}/influencers/1")[0] == 200


def test_pool_exhaustion_waits_the_timeout_then_503_and_recovers(throwaway_server, tmp_path):
    uri = embedded.server_uri(throwaway_server)
    server = start_server(
        tmp_path,
        DATABASE_URL=uri,
        CLOUTSY_WORKERS="1",
        POSTGRES_POOL_MAX="2",
        POSTGRES_POOL_TIMEOUT="1",
        CLOUTSY_STATEMENT_TIMEOUT_MS="8000",
    )
    try:
        assert http("POST", f"{server.url}/influencers", person(1))[0] == 201
        blocker = _lock_influencers(uri)
        try:
            requests = [Background(lambda: timed("GET", f"{server.url}/influencers/1"))]
            # The first request holds a connection, blocked on the lock, before the next one.
            wait_until(lambda: lock_waiters(uri) == 1, what="a first request blocked on the lock")
            requests += [Background(lambda: timed("GET", f"{server.url}/influencers/1"))]
            wait_until(lambda: lock_waiters(uri) == 2, what="both pooled connections blocked")
            # The pool is empty now: two more requests wait its 1 s timeout, then 503.
            refused = [Background(lambda: timed("GET", f"{server.url}/influencers/1"))]
            refused += [Background(lambda: timed("GET", f"{server.url}/influencers/1"))]
            refused_results = [r.result() for r in refused]
        finally:
            blocker.rollback()
            blocker.close()
        for status, headers, raw, took in refused_results:
            assert status == 503 and json.loads(raw)["error"]["code"] == "unavailable"
            assert headers["Retry-After"]
            assert took >= 0.9  # the subject is the pool's 1 s timeout
        # Released, the two blocked requests are answered from the same pool.
        assert [r.result()[0] for r in requests] == [200, 200]
        assert [http("GET", f"{server.url}/influencers/1")[0] for _ in range(10)] == [200] * 10
    finally:
        server.stop()


def test_every_acknowledged_write_survives_a_crash(private_server):
    server, pgdata, uri = private_server
    acknowledged = []

    def sign_up(n: int) -> None:
        status, _, raw = http("POST", f"{server.url}/influencers", person(n))
        if status == 201:
            acknowledged.append(json.loads(raw)["id"])

    with futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(sign_up, range(1, 61)))
    embedded.stop(pgdata, "immediate")  # a crash: no checkpoint, no clean shutdown
    embedded.start(pgdata)
    conn = psycopg2.connect(uri)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id FROM influencers WHERE id = ANY(%s)", (acknowledged,))
        found = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert len(acknowledged) == 60
    assert found == set(acknowledged)


def test_sigterm_lets_in_flight_requests_finish_and_leaves_no_connection(private_server):
    server, _, uri = private_server
    assert http("POST", f"{server.url}/influencers", person(1))[0] == 201
    blocker = _lock_influencers(uri)
    in_flight = Background(lambda: http("GET", f"{server.url}/influencers/1"))
    wait_until(lambda: lock_waiters(uri) == 1, what="the request blocked on the lock")
    server.process.send_signal(15)
    wait_until(lambda: "Shutting down granian" in server.log.read_text(), 10, "the shutdown")
    blocker.rollback()  # let it finish while the server drains
    started = time.monotonic()
    status, _, raw = in_flight.result(timeout=10)
    assert status == 200 and json.loads(raw)["id"] == 1
    assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    with pytest.raises(OSError):
        http("GET", f"{server.url}/health")
    cur = blocker.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cloutsy'")
    assert cur.fetchone()[0] == 0
    blocker.close()
