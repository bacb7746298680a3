"""Two API hosts behind a real load balancer (HAProxy 2.6, health-checking /health).

Everything a client relies on lives in PostgreSQL, so it holds whichever host answers:
a code sent through one host verifies through the other, a session made on one works on
the other, the per-phone send limit and the 6th wrong try on a code are counted across
both. Then one host is killed (SIGKILL of its whole process group) in the middle of a
stream of requests, and after the balancer's health-check interval no request fails.

After the merge of issues 12 and 13, the login throttle and idempotency keys are one more
step each in `test_state_is_shared_by_both_hosts` (same shape: act on one host, check on
the other).
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import json
import threading
import time

import pytest

from tests.conftest import truncate_all
from tests.engines import (
    ONE_ADDRESS,
    ROOT,
    Balancer,
    haproxy_config,
    start_server,
    wait_healthy,
)
from tests.helpers import Background, http, influencer_body, wait_until

CHECK_MS = 300  # health-check interval; a host is out after 2 failed checks ("fall 2")


@pytest.fixture(scope="module")
def hosts(pool, tmp_path_factory):
    truncate_all(pool)
    log_dir = tmp_path_factory.mktemp("hosts")
    first = start_server(log_dir, CLOUTSY_WORKERS="1", CLOUTSY_RATE_LIMITS=ONE_ADDRESS)
    second = start_server(log_dir, CLOUTSY_WORKERS="1", CLOUTSY_RATE_LIMITS=ONE_ADDRESS)
    balancer = Balancer([first.port, second.port], check_ms=CHECK_MS)
    try:
        wait_healthy(balancer.url)
        yield first, second, balancer
    finally:
        balancer.stop()
        first.stop()
        second.stop()
        truncate_all(pool)


person = functools.partial(influencer_body, tag="host", phone_prefix="97")


@pytest.mark.slow
def test_state_is_shared_by_both_hosts(hosts):
    one, other, balancer = hosts
    status, _, body = http("POST", f"{balancer.url}/influencers", person(1))
    assert status == 201, body
    me = json.loads(body)["id"]
    phone = person(1)["phone"]

    # OTP: sent through one host, verified through the other.
    status, _, body = http("POST", f"{one.url}/auth/otp/send", {"phone": phone})
    assert status == 202
    code = json.loads(body)["debugOtp"]
    # The per-phone send limit (1 per 30 s) is counted across hosts.
    status, headers, _ = http("POST", f"{other.url}/auth/otp/send", {"phone": phone})
    assert status == 429 and int(headers["Retry-After"]) > 0
    status, _, body = http("POST", f"{other.url}/auth/otp/verify", {"phone": phone, "otp": code})
    assert status == 200, body
    token = json.loads(body)["token"]
    assert json.loads(body)["account"] == {"type": "influencer", "id": me}

    # Sessions: made on one host, valid on both; logged out on one, dead on both.
    auth = {"Authorization": f"Bearer {token}"}
    for host in (one, other):
        status, _, body = http("GET", f"{host.url}/me", headers=auth)
        assert status == 200 and json.loads(body)["isPhoneVerified"] is True
    assert http("POST", f"{one.url}/auth/logout", headers=auth)[0] == 204
    assert http("GET", f"{other.url}/me", headers=auth)[0] == 401

    # Wrong codes alternate between the hosts: the 6th wrong try is refused, wherever.
    phone2 = person(2)["phone"]
    code2 = json.loads(http("POST", f"{other.url}/auth/otp/send", {"phone": phone2})[2])
    wrong = "000000" if code2["debugOtp"] != "000000" else "111111"
    for attempt in range(1, 7):
        host = one if attempt % 2 else other
        status, _, _ = http("POST", f"{host.url}/auth/otp/verify", {"phone": phone2, "otp": wrong})
        assert status == (429 if attempt == 6 else 400), attempt
    good = {"phone": phone2, "otp": code2["debugOtp"]}
    assert http("POST", f"{one.url}/auth/otp/verify", good)[0] == 429  # the code is dead


@pytest.mark.slow
def test_a_killed_host_is_routed_around_with_no_failed_request_after_the_check(hosts):
    one, other, balancer = hosts
    outcomes: list[tuple[float, str, int]] = []
    lock = threading.Lock()
    counter = iter(range(1000, 100000))

    def one_request(_: int) -> None:
        with lock:
            n = next(counter)
        kind = ("signup", "list", "niches", "detail")[n % 4]
        try:
            if kind == "signup":
                status = http("POST", f"{balancer.url}/influencers", person(n))[0]
            elif kind == "list":
                status = http("GET", f"{balancer.url}/influencers?limit=10")[0]
            elif kind == "niches":
                status = http("GET", f"{balancer.url}/niches")[0]
            else:
                status = http("GET", f"{balancer.url}/influencers/1")[0]
        except OSError:
            status = 0
        ok = {"signup": 201}.get(kind, 200)
        outcomes.append((time.monotonic(), kind, status if status != ok else -1))

    stop = threading.Event()

    def drive() -> None:
        with futures.ThreadPoolExecutor(6) as pool:
            while not stop.is_set():
                list(pool.map(one_request, range(6)))

    driver = Background(drive)
    try:
        wait_until(lambda: len(outcomes) >= 24, 30, "traffic through the balancer")
        one.kill()
        killed = time.monotonic()
        grace = killed + 2 * CHECK_MS / 1000 + 0.3  # two failed checks, and a little slack

        def sent_after() -> bool:
            return sum(1 for o in list(outcomes) if o[0] > grace) >= 100

        wait_until(sent_after, 30, "100 requests after the killed host was taken out")
    finally:
        stop.set()
        driver.result(20)
    failed_before = [o for o in outcomes if o[2] != -1 and o[0] <= grace]
    failed_after = [o for o in outcomes if o[2] != -1 and o[0] > grace]
    after = [o for o in outcomes if o[0] > grace]
    print(
        f"{len(outcomes)} requests through HAProxy; {len(failed_before)} failed before the "
        f"health check took the killed host out, {len(failed_after)} after ({len(after)} sent)"
    )
    assert len(after) > 50
    assert failed_after == []
    status, _, body = http("GET", f"{balancer.url}/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_the_readme_shows_the_balancer_configuration_the_tests_use():
    readme = (ROOT / "README.md").read_text()
    shown = haproxy_config(8080, [8081, 8082], 500)
    assert shown in readme
