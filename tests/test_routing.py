"""Replica routing without a replica: the lag rule, skipping, fallback and read-your-writes.

The "replica" here is a second pool on the test database (a separate connection: it does
not see the test's uncommitted rows, as a replica does not see what it has not replayed)
or a pool on a port where nothing listens (a dead replica). The real streaming replica is
in test_replicas.py.
"""

from __future__ import annotations

import time
from collections import deque

import pytest

from cloutsy import replicas
from cloutsy.db import PooledDatabase, connect_params, connection_url
from cloutsy.ports import free_port


def lag(history, replayed, primary_lsn, since_replay=None):
    now = time.monotonic()
    rs = replicas.ReplicaSet(primary=None, replicas=[], max_lag_s=5)  # type: ignore[arg-type]
    rs.history = deque((now - ago, lsn) for ago, lsn in history)
    return rs._lag(replayed, primary_lsn, since_replay)


def test_a_replica_that_has_replayed_everything_has_no_lag_however_idle_the_primary():
    assert lag([(3600, 10)], replayed=10, primary_lsn=10, since_replay=3600.0) == 0.0


def test_lag_is_the_time_since_the_primary_passed_what_the_replica_replayed():
    measured = lag([(100, 10), (3, 20), (1, 30)], replayed=15, primary_lsn=30, since_replay=99)
    assert 2.9 < measured < 3.5


def test_a_replica_behind_since_before_the_monitor_started_uses_its_replay_time():
    assert lag([(1, 20)], replayed=15, primary_lsn=20, since_replay=40.0) >= 40.0


def test_a_replica_never_replayed_counts_from_the_first_position_seen():
    assert 4.9 < lag([(5, 20)], replayed=None, primary_lsn=20) < 5.5


def pool_on(url, settings):
    params = connect_params(url, settings)
    return PooledDatabase(params.pop("database"), max_connections=2, autoconnect=False, **params)


@pytest.fixture
def replica_set(pool, settings, monkeypatch):
    """A replica set with one 'replica': a second pool on the test database."""
    second = pool_on(connection_url(settings), settings)
    replica = replicas.Replica("second:0/test", second, up=True, lag_s=0.0, reason=None)
    rs = replicas.ReplicaSet(pool, [replica], max_lag_s=5)
    reads: list[str] = []
    monkeypatch.setattr(replicas, "current", rs)
    monkeypatch.setattr(replicas, "read_observer", reads.append)
    yield rs, reads
    second.close_all()


def sign_up(client, n):
    body = {"name": f"R {n}", "username": f"routed{n}", "email": f"r{n}@example.com"}
    return client.post_json("/influencers", {**body, "phone": f"98{n:08d}"})


def test_public_reads_go_to_the_replica_and_a_writer_reads_its_own_writes(client, replica_set):
    _, reads = replica_set
    created = sign_up(client, 1)
    cookie = created.headers["Set-Cookie"]
    assert cookie.startswith("cloutsy_ryw=") and "HttpOnly" in cookie
    new_id = created.json["id"]
    # The writer (its cookie kept by the client) reads from the primary: it sees the row.
    assert client.get(f"/influencers/{new_id}").json["id"] == new_id
    assert reads == ["primary"]
    # Another client (no cookie) is served by the replica, which has not got the row.
    client.reset()
    assert client.get(f"/influencers/{new_id}", expect_errors=True).status_int == 404
    assert client.get("/niches").json["items"]
    assert reads == ["primary", "replica", "replica"]


def test_lagging_and_dead_replicas_are_skipped_without_an_error(client, replica_set, settings):
    rs, reads = replica_set
    new_id = sign_up(client, 2).json["id"]
    client.reset()
    rs.replicas[0].lag_s = 6.0  # over CLOUTSY_REPLICA_MAX_LAG_S
    assert client.get(f"/influencers/{new_id}").status_int == 200
    assert reads == ["primary"]
    assert client.get("/health").json["replicas"] == [
        {"name": "second:0/test", "state": "lagging", "lagS": 6.0}
    ]
    # Dead: nothing listens on its port; the read is answered by the primary.
    dead = pool_on(f"postgresql://postgres@127.0.0.1:{free_port()}/x", settings)
    rs.replicas[0] = replicas.Replica("dead:1/x", dead, up=True, lag_s=0.0, reason=None)
    assert client.get(f"/influencers/{new_id}").status_int == 200
    assert reads == ["primary", "primary"]
    assert client.get("/health").json["replicas"][0]["state"] == "down"
    assert "cloutsy_db_public_reads_total" in client.get("/metrics").text


def test_the_notebooks_read_the_first_replica_when_no_analytics_url_is_set(settings, pool):
    """In a fresh process (as a notebook kernel): the primary in DATABASE_URL is unreachable,
    the 'replica' (the test database) answers, so the analytics read from the replica."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    code = (
        "from cloutsy import analytics\n"
        "analytics.use_analytics_database()\n"
        "print(len(analytics.accounts_per_niche()) > 0)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CLOUTSY_SECRET_KEY": settings.secret_key,
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/nowhere",
        "DATABASE_REPLICA_URLS": connection_url(settings),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
