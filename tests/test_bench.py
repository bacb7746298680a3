"""The bench's own parts: the psycopg2 baseline speaks the contract, wrk output parses,
medians and ratios come out right, the one server starter waits for /health and says why
a server never came up. No timing is asserted here: that is `invoke bench`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Iterator

import pytest
from webtest import TestApp

from cloutsy.bench import BenchError, constant
from cloutsy.bench.baseline import BaselineApp
from cloutsy.bench.compare import answers, compare_answers, first_difference, normalise
from cloutsy.bench.load import REVALIDATE, UNPREPARED, Row, WrkResult, parse_wrk, summarise
from cloutsy.bench.report import format_table, unprepared_notes
from cloutsy.bench.runner import stack_order
from cloutsy.bench.servers import Server, healthy
from cloutsy.config import Settings
from cloutsy.db import PooledDatabase, connection_url
from cloutsy.models import Influencer, InfluencerNiche, Niche
from cloutsy.ports import free_port, listening

# Captured from `wrk -t2 -c16 -d1s -s paths.lua+report.lua` against the constant app.
WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18931/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.73ms  611.90us   9.58ms   84.34%
    Req/Sec     1.32k   311.90     1.49k    95.24%
  2753 requests in 1.10s, 14.15MB read
Requests/sec:   2501.68
Transfer/sec:     12.86MB
BENCH {"requests":2753,"duration_us":1100462,"p50_us":5480,"p90_us":6688,"p99_us":7914,\
"max_us":9582,"connect":0,"read":2,"write":0,"status":3,"timeout":1}
"""

PUBLIC_KEYS = {
    "id",
    "name",
    "username",
    "gender",
    "bio",
    "profileImage",
    "isPhoneVerified",
    "isActive",
    "createdAt",
    "updatedAt",
    "niches",
}


@pytest.fixture
def baseline(committed: PooledDatabase, settings: Settings) -> Iterator[TestApp]:
    """The baseline WSGI app on the test database, through WebTest."""
    app = BaselineApp(connection_url(settings))
    yield TestApp(app)
    app.close()


@pytest.fixture
def influencer(committed: PooledDatabase) -> Influencer:
    """A committed influencer in two niches (linked in reverse id order)."""
    with committed.connection_context():
        person = Influencer.create(
            name="Asha Rao",
            username="asha.rao",
            email="asha@example.com",
            phone="+919812345678",
            bio="Food and travel",
        )
        food, travel = Niche.get(Niche.slug == "food"), Niche.get(Niche.slug == "travel")
        for niche in sorted((food, travel), key=lambda n: -n.id):
            InfluencerNiche.create(influencer=person, niche=niche)
        return Influencer.get_by_id(person.id)


def test_baseline_returns_the_public_view(baseline: TestApp, influencer: Influencer) -> None:
    resp = baseline.get(f"/influencers/{influencer.id}")

    assert resp.content_type == "application/json"
    body = resp.json
    assert set(body) == PUBLIC_KEYS  # no email, phone or dateOfBirth: PII stays private
    assert body["username"] == "asha.rao"
    assert body["profileImage"] is None and body["isActive"] is True
    assert dt.datetime.fromisoformat(body["createdAt"]) == influencer.created_at
    assert dt.datetime.fromisoformat(body["createdAt"]).utcoffset() is not None
    assert [n["slug"] for n in body["niches"]] == ["food", "travel"]  # by niche id
    assert set(body["niches"][0]) == {"id", "name", "slug", "icon"}


def test_baseline_answers_404_for_missing_and_inactive_ids(
    baseline: TestApp, influencer: Influencer, committed: PooledDatabase
) -> None:
    baseline.get("/influencers/999999", status=404)
    with committed.connection_context():
        Influencer.update(is_active=False).where(Influencer.id == influencer.id).execute()

    resp = baseline.get(f"/influencers/{influencer.id}", status=404)

    assert resp.json["error"]["code"] == "not_found"


def test_baseline_lists_a_niche_newest_first(
    baseline: TestApp, influencer: Influencer, committed: PooledDatabase
) -> None:
    with committed.connection_context():
        newer = Influencer.create(
            name="Ravi K", username="ravi.k", email="ravi@example.com", phone="+919812345679"
        )
        InfluencerNiche.create(influencer=newer, niche=Niche.get(Niche.slug == "food"))

    first = baseline.get("/influencers", {"niche": "food", "limit": "1"}).json
    both = baseline.get("/influencers", {"niche": "food"}).json

    assert [i["id"] for i in first["items"]] == [newer.id]
    assert first["nextCursor"] is not None
    assert [i["id"] for i in both["items"]] == [newer.id, influencer.id]
    assert both["nextCursor"] is None


def test_constant_app_answers_json_shaped_like_the_service() -> None:
    client = TestApp(constant.app)

    one = client.get("/influencers/1").json
    page = client.get("/influencers", {"niche": "food", "limit": "20"}).json

    assert set(one) == PUBLIC_KEYS
    assert len(page["items"]) == 20


def test_parse_wrk_reads_the_report_line() -> None:
    result = parse_wrk(WRK_OUTPUT)

    assert result.requests == 2753
    assert result.rps == pytest.approx(2753 / 1.100462)
    assert (result.p50_ms, result.p99_ms) == (5.48, 7.914)
    assert result.errors == 6  # read 2 + status 3 + timeout 1
    assert result.error_detail["status"] == 3


def test_parse_wrk_without_a_report_line_names_the_last_line() -> None:
    with pytest.raises(BenchError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def _result(rps: float, p50: float = 1.0, errors: int = 0) -> WrkResult:
    return WrkResult(int(rps * 10), 10.0, p50, p50, p50 * 2, errors)


def test_summarise_takes_medians_and_per_round_ratios() -> None:
    rounds = [
        {("by id", "service"): _result(1000, 4.0), ("by id", "baseline"): _result(500, 8.0)},
        {("by id", "service"): _result(900, 5.0, errors=1), ("by id", "baseline"): _result(300)},
        {("by id", "service"): _result(1200, 3.0), ("by id", "baseline"): _result(400)},
    ]

    rows = {r.stack: r for r in summarise(rounds)}

    service = rows["service"]
    assert service.rps == 1000 and service.p50_ms == 4.0
    assert service.errors == 1  # errors are summed, never a median
    assert service.ratio == pytest.approx(3.0)  # median of 2.0, 3.0, 3.0
    assert rows["baseline"].ratio == 1.0
    table = format_table([*rows.values(), Row("by niche", "x", 1, 1, 1, 0, None)])
    assert "3.00x" in table and table.splitlines()[-1].endswith("-")


def test_same_instant_printed_differently_compares_equal() -> None:
    ours = normalise({"createdAt": "2026-01-02T03:04:05.120000+00:00", "niches": []})
    theirs = normalise({"createdAt": "2026-01-02T08:34:05.12+05:30", "niches": []})

    assert first_difference(ours, theirs) is None
    assert "niches" in (first_difference(ours, {**theirs, "niches": [1]}) or "")


def test_compare_answers_reports_status_and_body_differences() -> None:
    expected = {"/a": (200, {"id": 1}), "/b": (404, None)}
    actual = {"/a": (200, {"id": 2}), "/b": (200, {})}

    problems = compare_answers(expected, actual)

    assert problems == ["GET /a: .id: 2, expected 1", "GET /b: status 200, expected 404"]


def test_answers_keeps_only_items_of_list_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {"/l": (200, {"items": [{"id": 1}], "nextCursor": "opaque"}), "/x": (404, {})}
    monkeypatch.setattr("cloutsy.bench.compare.fetch", lambda base, path: pages[path])

    got = answers("http://h", ["/l", "/x"])

    assert got == {"/l": (200, [{"id": 1}]), "/x": (404, None)}
    assert json.dumps(got["/l"][1])  # plain JSON values, comparable across stacks


def test_rounds_rotate_the_order_of_stacks() -> None:
    orders = [stack_order(n) for n in (1, 2, 3, 4)]

    assert orders[0] == ["service", "baseline", "constant"]  # the JSON check needs service first
    assert [o[0] for o in orders[:3]] == ["service", "baseline", "constant"]
    assert orders[3] == orders[0]


def test_the_report_says_what_prepared_statements_off_cost_the_reads() -> None:
    rows = [
        Row("by id", "service", 2000.0, 1.0, 2.0, 0, 2.5),
        Row("by id", UNPREPARED, 1500.0, 1.2, 2.5, 0, 1.875),
        Row("by niche", "service", 800.0, 1.0, 2.0, 0, 2.6),
        Row("by niche", UNPREPARED, 720.0, 1.1, 2.2, 1, 2.34),
    ]
    (note,) = unprepared_notes(rows)
    assert "by id: 0.75x the prepared service's req/s (1.88x baseline, 0 errors)" in note
    assert "by niche: 0.90x" in note and "1 errors" in note
    assert unprepared_notes(rows[:1]) == []


def test_the_304_row_is_compared_with_the_baselines_full_read() -> None:
    rounds = [
        {
            ("by id", "service"): _result(1000, 4.0),
            ("by id", "baseline"): _result(500, 8.0),
            (REVALIDATE, "service"): _result(2000, 2.0),
        }
    ]
    rows = {(r.endpoint, r.stack): r for r in summarise(rounds)}
    assert rows[(REVALIDATE, "service")].ratio == pytest.approx(4.0)


def test_revalidation_tag_checks_the_server_answers_an_empty_304(committed, wsgi_app) -> None:
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from cloutsy.bench.compare import revalidation_tag

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    with committed.connection_context():
        person = Influencer.create(
            name="Bench", username="bench304", email="b304@example.com", phone="+919812300304"
        )
    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        tag = revalidation_tag(base, f"/influencers/{person.id}")
        assert tag.startswith('W/"')
        with pytest.raises(BenchError, match="no ETag"):
            revalidation_tag(base, "/influencers/999999")
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_exits_at_start_up_says_so_with_its_last_log_line(tmp_path) -> None:
    argv = [sys.executable, "-c", "print('no database here'); raise SystemExit(3)"]
    server = Server("broken", argv, os.environ, free_port(), tmp_path)

    with pytest.raises(BenchError, match="broken exited at start-up .*: no database here"):
        server.start(timeout=30)

    assert server.process is not None and server.process.returncode == 3


def test_a_server_is_ready_once_health_answers_and_stops_on_sigterm(tmp_path) -> None:
    port = free_port()
    serve = (
        "from wsgiref.simple_server import make_server\n"
        "from cloutsy.bench import constant\n"
        f"make_server('127.0.0.1', {port}, constant.app).serve_forever()\n"
    )
    server = Server("constant", [sys.executable, "-c", serve], os.environ, port, tmp_path)

    with server:
        assert healthy(server.url)

    assert server.process is not None and server.process.returncode == -signal.SIGTERM
    assert not healthy(server.url) and not listening(port)
