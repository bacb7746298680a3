"""A real streaming replica (`pg_basebackup -R`) behind the live service (CONTRACT §10).

Which server answered is proven with a marker, never a mock: the replica's WAL replay is
paused (`pg_wal_replay_pause()`) and a row is changed on the primary, so only the primary
can show the change.
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import json
import re
import time

import pytest

from tests.engines import ONE_ADDRESS, make_cluster, make_replica, start_server, wait_replayed
from tests.helpers import http, influencer_body, wait_until

pytestmark = pytest.mark.slow

DB = "cloutsy_replicas"
MAX_LAG_S = 1.0


@pytest.fixture(scope="module")
def pair():
    primary = make_cluster("rep-primary")
    replica = None
    try:
        primary.sql(f"CREATE DATABASE {DB}")
        replica = make_replica(primary, "rep-replica")
        yield primary, replica
    finally:
        if replica is not None:
            replica.remove()
        primary.remove()


@pytest.fixture(scope="module")
def served(pair, tmp_path_factory):
    primary, replica = pair
    server = start_server(
        tmp_path_factory.mktemp("replicas"),
        DATABASE_URL=primary.url(DB),
        DATABASE_REPLICA_URLS=replica.url(DB),
        CLOUTSY_REPLICA_MAX_LAG_S=str(MAX_LAG_S),
        CLOUTSY_READ_YOUR_WRITES_S="3",
        CLOUTSY_WORKERS="1",
        CLOUTSY_RATE_LIMITS=ONE_ADDRESS,
        # Every read must reach a database to be counted: no per-worker niche copy.
        CLOUTSY_NICHES_CACHE_S="0",
    )
    yield server
    server.stop()


def replica_state(url: str) -> dict:
    body = json.loads(http("GET", f"{url}/health")[2])
    assert body["status"] == "ok"  # a replica's trouble never makes the service unhealthy
    (state,) = body["replicas"]
    return state


def wait_state(url: str, wanted: str, timeout: float = 10) -> dict:

    def in_state() -> dict | None:
        state = replica_state(url)
        return state if state["state"] == wanted else None

    return wait_until(in_state, timeout, f"the replica to be {wanted!r}")


def replica_reads(url: str) -> float:
    text = http("GET", f"{url}/metrics")[2].decode()
    found = re.search(r'cloutsy_db_public_reads_total\{target="replica"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


person = functools.partial(influencer_body, tag="replica", phone_prefix="95")


def test_public_reads_reach_the_replica_and_a_writer_reads_its_writes(pair, served):
    primary, replica = pair
    url = served.url
    wait_state(url, "ok")
    status, _, body = http("POST", f"{url}/influencers", person(1))
    assert status == 201
    first = json.loads(body)["id"]
    wait_replayed(primary, replica, DB)

    replica.sql("SELECT pg_wal_replay_pause()", db=DB)
    try:
        primary.sql("UPDATE influencers SET bio = 'marker' WHERE id = %s", (first,), db=DB)
        # A public read answered by the replica: it has not replayed the marker.
        assert json.loads(http("GET", f"{url}/influencers/{first}")[2])["bio"] is None
        assert replica_reads(url) >= 1

        # Read-your-writes: the sign-up's own client reads the new row at once.
        status, headers, body = http("POST", f"{url}/influencers", person(2))
        assert status == 201
        second = json.loads(body)["id"]
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        assert cookie.startswith("cloutsy_ryw=")
        mine = http("GET", f"{url}/influencers/{second}", headers={"Cookie": cookie})
        assert mine[0] == 200 and json.loads(mine[2])["id"] == second
        # Anyone else is still served by the (paused) replica, which has not got it.
        assert http("GET", f"{url}/influencers/{second}")[0] == 404
        # A private read (the account's own token) always comes from the primary.
        sent = json.loads(http("POST", f"{url}/auth/otp/send", {"phone": person(2)["phone"]})[2])
        verify = {"phone": person(2)["phone"], "otp": sent["debugOtp"]}
        token = json.loads(http("POST", f"{url}/auth/otp/verify", verify)[2])["token"]
        auth = {"Authorization": f"Bearer {token}"}
        status, _, body = http("GET", f"{url}/influencers/{second}", headers=auth)
        assert status == 200 and json.loads(body)["email"] == person(2)["email"]
        assert json.loads(http("GET", f"{url}/me", headers=auth)[2])["id"] == second

        # Paused past the limit: skipped, so everyone reads from the primary.
        lagging = wait_state(url, "lagging", timeout=5)
        assert lagging["lagS"] > MAX_LAG_S
        assert json.loads(http("GET", f"{url}/influencers/{first}")[2])["bio"] == "marker"
        assert http("GET", f"{url}/influencers/{second}")[0] == 200
    finally:
        replica.sql("SELECT pg_wal_replay_resume()", db=DB)
    wait_state(url, "ok")
    before = replica_reads(url)
    assert json.loads(http("GET", f"{url}/influencers/{first}")[2])["bio"] == "marker"
    assert replica_reads(url) == before + 1


def test_an_idle_primary_does_not_look_like_lag(served):
    wait_state(served.url, "ok")
    # The subject is time passing with no write at all: the last replayed transaction grows
    # old while the replica is fully caught up, so this sleep is the test, not a wait.
    time.sleep(3 * MAX_LAG_S)
    state = replica_state(served.url)
    assert state["state"] == "ok" and state["lagS"] < MAX_LAG_S


def test_a_stopped_replica_is_skipped_without_an_error_and_used_again_when_back(pair, served):
    _, replica = pair
    url = served.url
    wait_state(url, "ok")
    paths = ["/influencers?limit=5", "/influencers/1", "/niches", "/niches/fashion", "/brands"]
    replica.stop("fast")
    try:
        with futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: http("GET", url + paths[i % 5])[0], range(100)))
        assert statuses == [200] * 100
        down = wait_state(url, "down", timeout=3)
        assert down["lagS"] is None
        text = http("GET", f"{url}/metrics")[2].decode()
        assert re.search(r'cloutsy_db_replica_up\{replica="[^"]+"\} 0\.0', text)
    finally:
        replica.start()
    wait_state(url, "ok", timeout=10)
    before = replica_reads(url)
    statuses = [http("GET", url + paths[i % 5])[0] for i in range(20)]
    assert statuses == [200] * 20
    assert replica_reads(url) == before + 20  # every one of them on the replica again
