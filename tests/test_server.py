"""The real server: `invoke serve` on a free port, spoken to over HTTP, then SIGTERM.

Also the bounded schemathesis run over /openapi.json (no 500, no response breaking the
schema, stateful links from sign-up to detail).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import truncate_all
from tests.engines import start_server
from tests.helpers import ROOT, http, wait_until


@pytest.fixture(scope="module")
def live_server(pool, tmp_path_factory):
    truncate_all(pool)
    server = start_server(tmp_path_factory.mktemp("serve"))
    yield server
    server.stop()
    truncate_all(pool)


def test_the_served_api_answers_over_http(live_server, settings):
    status, headers, body = http("GET", f"{live_server.url}/health")
    assert status == 200 and json.loads(body)["database"]["pendingMigrations"] == 0
    if settings.embedded:  # the default needs nothing configured and is least privilege
        assert "the service connects as cloutsy_app" in live_server.log.read_text()
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-Request-Id"]

    status, _, body = http("GET", f"{live_server.url}/niches")
    niches = json.loads(body)["items"]
    assert status == 200 and len(niches) >= 20

    person = {
        "name": "Live",
        "username": "live.one",
        "email": "live@example.com",
        "phone": "9123456780",
        "nicheIds": [niches[0]["id"]],
    }
    status, headers, body = http("POST", f"{live_server.url}/influencers", person)
    assert status == 201, body
    created = json.loads(body)
    assert headers["Location"] == f"/influencers/{created['id']}"

    status, _, body = http("GET", f"{live_server.url}/influencers/{created['id']}")
    assert status == 200 and json.loads(body)["username"] == "live.one"
    status, _, body = http("GET", f"{live_server.url}/influencers?niche={niches[0]['slug']}")
    assert [i["id"] for i in json.loads(body)["items"]] == [created["id"]]

    twin = dict(person, username="LIVE.ONE", email="twin@example.com", phone="9123456781")
    status, _, body = http("POST", f"{live_server.url}/influencers", twin)
    assert status == 409 and json.loads(body)["error"]["details"][0]["field"] == "username"
    status, _, body = http("GET", f"{live_server.url}/nowhere")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"

    def metrics_of_both_workers():  # each publishes its pool figures within a second of start
        answer = http("GET", f"{live_server.url}/metrics")
        return answer if b"cloutsy_db_pool_max 10.0" in answer[2] else None

    status, headers, body = wait_until(metrics_of_both_workers, 5, "both workers' pool figures")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    # Counted across both workers: every request above shows up.
    assert 'route="/influencers",status="201"' in text
    assert "cloutsy_db_pool_max 10.0" in text  # 2 workers x pool of 5, summed
    # Sizes from the catalogue, merged across workers (the newest reading wins).
    assert re.search(r"^cloutsy_database_size_bytes \d", text, re.MULTILINE)
    assert re.search(r'^cloutsy_table_size_bytes\{table="influencers"\} \d', text, re.MULTILINE)
    assert re.search(r'^cloutsy_table_rows_estimate\{table="niches"\} \d', text, re.MULTILINE)


def test_a_client_verifies_its_phone_edits_itself_and_logs_out_over_http(live_server):
    """Issue 4's story end to end through the real server; then its log is searched for
    every secret the story used (codes, tokens, full phone numbers).
    """
    url = live_server.url
    niches = json.loads(http("GET", f"{url}/niches")[2])["items"]
    me = {"name": "Story", "username": "story", "email": "story@example.com", "phone": "9123400001"}
    status, _, body = http("POST", f"{url}/influencers", me)
    assert status == 201, body
    my_id = json.loads(body)["id"]
    them = dict(me, username="someone", email="someone@example.com", phone="9123400002")
    their_id = json.loads(http("POST", f"{url}/influencers", them)[2])["id"]

    status, _, body = http("POST", f"{url}/auth/otp/send", {"phone": me["phone"]})
    assert status == 202, body
    code = json.loads(body)["debugOtp"]  # development server
    status, _, body = http("POST", f"{url}/auth/otp/verify", {"phone": me["phone"], "otp": code})
    assert status == 200, body
    verified = json.loads(body)
    assert verified["account"] == {"type": "influencer", "id": my_id}
    auth = {"Authorization": f"Bearer {verified['token']}"}

    status, _, body = http("GET", f"{url}/me", headers=auth)
    assert status == 200 and json.loads(body)["isPhoneVerified"] is True
    status, _, body = http("PATCH", f"{url}/influencers/{my_id}", {"bio": "hello"}, auth)
    assert status == 200 and json.loads(body)["bio"] == "hello"
    picked = [niches[1]["id"], niches[2]["id"]]
    status, _, body = http("PUT", f"{url}/influencers/{my_id}/niches", {"nicheIds": picked}, auth)
    assert status == 200 and [n["id"] for n in json.loads(body)["items"]] == sorted(picked)

    for method, path, payload in [
        ("PATCH", f"/influencers/{their_id}", {"bio": "hijacked"}),
        ("PUT", f"/influencers/{their_id}/niches", {"nicheIds": picked}),
        ("DELETE", f"/influencers/{their_id}", None),
    ]:
        status, _, body = http(method, f"{url}{path}", payload, auth)
        assert status == 403 and json.loads(body)["error"]["code"] == "forbidden", (method, path)
    status, _, body = http("GET", f"{url}/influencers/{their_id}", headers=auth)
    assert status == 200 and json.loads(body)["bio"] is None and "email" not in json.loads(body)

    status, _, body = http("POST", f"{url}/auth/logout", headers=auth)
    assert status == 204 and body == b""
    assert http("GET", f"{url}/me", headers=auth)[0] == 401
    assert http("PATCH", f"{url}/influencers/{my_id}", {"bio": "again"}, auth)[0] == 401

    wait_until(lambda: "/auth/logout" in live_server.log.read_text(), 5, "the logout's log line")
    log = live_server.log.read_text()
    assert re.search(r'POST /auth/otp/verify[^"\n]*" 200', log)  # the server's access log
    assert 'INSERT INTO "otps"' in log  # peewee's query log (development)
    assert "verification code sent to +91******0001" in log
    for secret in (verified["token"], "+919123400001", "9123400001", "+919123400002"):
        assert secret not in log, secret
    assert not re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", log)


def test_openapi_describes_every_route(live_server, wsgi_app):
    status, _, body = http("GET", f"{live_server.url}/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = {(r.method, r.rule.replace("<", "{").replace(">", "}")) for r in wsgi_app.routes}
    assert routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)


def test_schemathesis_finds_no_server_error_nor_schema_break(live_server):
    # `--checks all` includes response_headers_conformance: every header the document marks
    # required (X-Request-Id, Cache-Control, ETag on GETs, Vary, Location, Retry-After) must
    # be present and match its schema, besides the bodies and status codes.
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{live_server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--generation-deterministic",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:]
    assert " passed" in result.stdout
    print(f"schemathesis: {took:.1f} s")


def test_sigterm_drains_and_exits_zero(pool, tmp_path):
    server = start_server(tmp_path, CLOUTSY_WORKERS="1")
    assert server.stop() == 0
    log = server.log.read_text()
    assert "Shutting down" in log and "Traceback" not in log
