"""PgBouncer (Debian's 1.18) in transaction mode in front of a private PostgreSQL (CONTRACT §10).

With POSTGRES_PREPARED_STATEMENTS=false the service keeps no session state: the API's own
tests pass through PgBouncer, a burst of 4x more client connections than PgBouncer's server
connections completes with no error, and the server's statement log shows no PREPARE, no
SET and no session-level advisory lock.
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import json
import re
import subprocess
import sys
import time

import pytest

from tests.engines import ONE_ADDRESS, ROOT, Bouncer, Cluster, make_cluster, start_server
from tests.helpers import http, influencer_body

pytestmark = pytest.mark.slow

DB = "cloutsy_pgbouncer"
SERVER_POOL = 3  # PgBouncer's server connections
# The API's tests that this file runs again through PgBouncer (every endpoint and flow).
API_TESTS = ["tests/test_api.py", "tests/test_otp.py", "tests/test_access.py"]


@pytest.fixture(scope="module")
def bounced():
    """A private cluster logging every statement, the app's role set up for PgBouncer."""
    cluster = make_cluster("pgb-primary", log_statement="'all'", log_min_messages="warning")
    bouncer = None
    try:
        cluster.sql(f"CREATE DATABASE {DB}")
        # Behind PgBouncer these cannot travel as startup options: they live on the role.
        cluster.sql("ALTER ROLE postgres SET statement_timeout = '5s'")
        cluster.sql("ALTER ROLE postgres SET timezone = 'UTC'")
        bouncer = Bouncer(cluster, pool_size=SERVER_POOL)
        yield cluster, bouncer
    finally:
        if bouncer is not None:
            bouncer.stop()
        cluster.remove()


def statements(cluster: Cluster) -> list[str]:
    log = cluster.log.read_text(errors="replace")
    return re.findall(r"statement: (.*)", log)


def test_the_api_tests_pass_through_pgbouncer_in_transaction_mode(bounced):
    cluster, bouncer = bounced
    env = {
        "DATABASE_URL": bouncer.url(DB),
        "POSTGRES_PREPARED_STATEMENTS": "false",
        "PATH": "/usr/bin:/bin",
    }
    import os

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *API_TESTS, "-q", "-x", "-m", "not slow",
         "-p", "no:cacheprovider"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    passed = int(re.search(r"(\d+) passed", result.stdout).group(1))
    assert passed > 150
    print(f"{passed} API tests through PgBouncer in {time.monotonic() - started:.1f} s")
    sent = statements(cluster)
    # The harness first migrates the schema, as `invoke migrate` does: that runner holds a
    # session advisory lock and session timeouts, so MIGRATION_DATABASE_URL must reach the
    # server directly, never PgBouncer's transaction pool (README, Scale-out). Judge what
    # the service sent after the runner let go of its lock.
    last = max(i for i, s in enumerate(sent) if "pg_advisory_unlock" in s)
    sent = sent[last + 1 :]
    assert sent, "the server logged no statement: the tests did not reach it"
    assert not [s for s in sent if re.match(r"(PREPARE|EXECUTE|DEALLOCATE)\b", s, re.I)]
    # PgBouncer itself replays a client's tracked startup parameters on the server connection
    # it hands over (`SET application_name='cloutsy';`): that is PgBouncer, not us.
    own = r"SET (application_name|client_encoding|datestyle|timezone|standard_conforming_strings)="
    # SET LOCAL ends with its transaction, so nothing carries over to the server connection's
    # next client (the catalogue's upsert raises its own statement timeout that way).
    session_sets = [
        s
        for s in sent
        if re.match(r"SET\b", s, re.I) and not re.match(own + r"|SET LOCAL\b", s, re.I)
    ]
    assert not session_sets
    assert not [s for s in sent if re.search(r"pg_advisory_(un)?lock", s)]
    assert any("pg_advisory_xact_lock" in s for s in sent)  # the OTP sends' lock


person = functools.partial(influencer_body, tag="burst", phone_prefix="93")


def admin_rows(bouncer: Bouncer, command: str) -> list[dict]:
    import psycopg2

    conn = psycopg2.connect(bouncer.url("pgbouncer"))
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(command)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def test_a_burst_of_four_times_more_clients_than_server_connections_has_no_error(bounced, tmp_path):
    cluster, bouncer = bounced
    workers, pool_max = 2, 6  # 12 client connections = 4 x PgBouncer's 3 server connections
    server = start_server(
        tmp_path,
        DATABASE_URL=bouncer.url(DB),
        POSTGRES_PREPARED_STATEMENTS="false",
        CLOUTSY_WORKERS=str(workers),
        POSTGRES_POOL_MAX=str(pool_max),
        CLOUTSY_RATE_LIMITS=ONE_ADDRESS,
    )
    try:
        url = server.url

        def one(n: int) -> tuple[str, int]:
            step = n % 4
            if step == 0:
                return "signup", http("POST", f"{url}/influencers", person(n))[0]
            if step == 1:
                return "list", http("GET", f"{url}/influencers?limit=20")[0]
            if step == 2:
                return "niches", http("GET", f"{url}/niches")[0]
            return "otp", http("POST", f"{url}/auth/otp/send", {"phone": f"94{n:08d}"})[0]

        started = time.monotonic()
        with futures.ThreadPoolExecutor(48) as pool:
            results = list(pool.map(one, range(800)))
        took = time.monotonic() - started
        expected = {"signup": 201, "list": 200, "niches": 200, "otp": 202}
        errors = [(k, s) for k, s in results if s != expected[k]]
        clients = [c for c in admin_rows(bouncer, "SHOW CLIENTS") if c["database"] == DB]
        servers = cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DB,))[0][
            0
        ]
        print(
            f"burst: {len(results)} requests in {took:.1f} s ({len(results) / took:.0f}/s), "
            f"{len(errors)} errors, {len(clients)} client connections on "
            f"{servers} server connections"
        )
        assert errors == []
        assert len(clients) >= 4 * SERVER_POOL
        assert servers <= SERVER_POOL
        # Every acknowledged sign-up is readable through PgBouncer.
        body = json.loads(http("GET", f"{url}/influencers?limit=100")[2])
        assert len(body["items"]) == 100
        assert "prepared statement" not in server.log.read_text()
    finally:
        server.stop()
