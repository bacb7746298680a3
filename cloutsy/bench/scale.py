"""`invoke bench --scale`: what must hold at 1,000,000 influencers.

The list's p50 against the 100,000 dataset's, page 500 against page 1 (keyset
pagination), the `q` search's latency, every `cloutsy.analytics` function and
`invoke notebooks`, each a pass/fail check under the table.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from cloutsy.bench.compare import fetch
from cloutsy.bench.load import Row, Wrk
from cloutsy.bench.report import Check
from cloutsy.bench.servers import server_env, start_stack
from cloutsy.bench.workload import Dataset, prepare_dataset, workload
from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.progress import Say

if TYPE_CHECKING:
    from cloutsy.bench.runner import Options


def scale_checks(
    settings: Settings,
    small: Dataset,
    rows: Sequence[Row],
    options: Options,
    wrk_binary: str,
    progress: Say,
) -> list[Check]:
    """At 1,000,000 influencers: list p50 vs 100k, page 500 vs page 1, `q` p50."""
    big = prepare_dataset(
        settings,
        options.scale_influencers,
        options.scale_brands,
        progress,
        options.fresh,
        days=options.scale_days,
    )
    checks = analytics_checks(big, progress)
    load = workload(big.dsn)
    small_p50 = next(r.p50_ms for r in rows if r.endpoint == "by niche" and r.stack == "service")
    with tempfile.TemporaryDirectory(prefix="cloutsy-bench-") as tmp:
        work = Path(tmp)
        wrk = Wrk(wrk_binary, work)
        with start_stack(big, "service", work) as server:
            page1 = wrk.measure_paths(
                server.url, wrk.paths_file("page1", load.by_niche), options.duration
            )
            progress(f"  by niche at {big.influencers:,}: {page1.brief()}")
            ratio = page1.p50_ms / small_p50 if small_p50 else float("inf")
            checks.append(
                Check(
                    f"list p50 at {big.influencers:,} vs {small.influencers:,}",
                    f"{page1.p50_ms:.2f} ms vs {small_p50:.2f} ms = {ratio:.2f}x",
                    "<= 1.3x",
                    ratio <= 1.3 and page1.errors == 0,
                )
            )
            deep, first = _deep_pages(server.url, load.slugs, page=500)
            progress(f"  walked {len(deep)} niche(s) to page 500 by nextCursor")
            if deep:
                shallow = wrk.measure_paths(
                    server.url, wrk.paths_file("first", first), options.duration
                )
                far = wrk.measure_paths(server.url, wrk.paths_file("deep", deep), options.duration)
                progress(f"  page 1:   {shallow.brief()}")
                progress(f"  page 500: {far.brief()}")
                ratio = far.p50_ms / shallow.p50_ms if shallow.p50_ms else float("inf")
                checks.append(
                    Check(
                        "page 500 vs page 1 (keyset)",
                        f"{far.p50_ms:.2f} ms vs {shallow.p50_ms:.2f} ms = {ratio:.2f}x",
                        "<= 1.3x",
                        ratio <= 1.3 and far.errors == 0,
                    )
                )
            else:
                checks.append(Check("page 500 vs page 1", "no niche has 500 pages", "-", False))
            paths = [f"/influencers?q={quote(t)}&limit=20" for t in load.search_terms]
            searches = wrk.paths_file("q", paths)
            # "Answers in" is latency: one client at a time. Under 16 connections p50 is
            # mostly queueing (16 / throughput), printed for information.
            alone = wrk.measure_paths(server.url, searches, options.duration, connections=1)
            loaded = wrk.measure_paths(server.url, searches, options.duration)
            progress(f"  q search, 1 connection:   {alone.brief()}")
            progress(f"  q search, 16 connections: {loaded.brief()}")
            checks.append(
                Check(
                    f"q search p50 at {big.influencers:,} (1 connection)",
                    f"{alone.p50_ms:.2f} ms, {alone.errors} errors; "
                    f"16 connections: p50 {loaded.p50_ms:.0f} ms at {loaded.rps:.0f} req/s",
                    "< 50 ms, 0 errors",
                    alone.p50_ms < 50 and alone.errors == 0 and loaded.errors == 0,
                )
            )
    return checks


ANALYTICS_LIMIT_S = 1.0
NOTEBOOKS_LIMIT_S = 60.0


def analytics_calls() -> list[tuple[str, Callable[[], object]]]:
    """Every public function of `cloutsy.analytics` and `cloutsy.timings` the notebooks call."""
    from cloutsy import analytics as a
    from cloutsy import timings as t

    return [
        ("signups(day)", lambda: a.signups("day")),
        ("signups(week)", lambda: a.signups("week")),
        ("signups(month)", lambda: a.signups("month")),
        ("growth(week)", lambda: a.growth("week")),
        ("growth(month)", lambda: a.growth("month")),
        ("verification_funnel", a.verification_funnel),
        ("profile_funnel", a.profile_funnel),
        ("accounts_per_niche", a.accounts_per_niche),
        ("demand_supply", a.demand_supply),
        ("niches_per_account", a.niches_per_account),
        ("niche_cooccurrence(influencer)", lambda: a.niche_cooccurrence("influencer")),
        ("niche_cooccurrence(brand)", lambda: a.niche_cooccurrence("brand")),
        ("probe", t.probe),
        ("query_timings", t.query_timings),
        ("orm_vs_raw", t.orm_vs_raw),
        ("eager_vs_lazy", t.eager_vs_lazy),
        ("pooled_vs_fresh", t.pooled_vs_fresh),
        ("explain_plans", t.explain_plans),
    ]


def analytics_checks(data: Dataset, progress: Say) -> list[Check]:
    """Each analytics function once (after a warm-up call) and `invoke notebooks`, timed."""
    from cloutsy.db import close_database, database, init_database

    init_database(data.settings, url=data.dsn)
    timings: list[tuple[str, float]] = []
    try:
        with database.connection_context():
            for name, call in analytics_calls():
                call()  # warm: the first call also prepares statements and fills caches
                started = time.perf_counter()
                call()
                timings.append((name, time.perf_counter() - started))
    finally:
        close_database()
    slowest = max(timings, key=lambda t: t[1])
    for name, seconds in timings:
        progress(f"  analytics {name:<32}{seconds * 1000:8.0f} ms")
    checks = [
        Check(
            f"every cloutsy.analytics function at {data.influencers:,} influencers",
            f"slowest {slowest[0]} {slowest[1] * 1000:.0f} ms "
            f"({len(timings)} functions, {sum(t for _, t in timings):.2f} s in all)",
            f"< {ANALYTICS_LIMIT_S * 1000:.0f} ms each",
            slowest[1] < ANALYTICS_LIMIT_S,
        )
    ]
    env = server_env(data)
    env["CLOUTSY_ENV"] = "development"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "notebooks"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    tail = (done.stderr or done.stdout).strip().splitlines()
    progress(f"  invoke notebooks: {seconds:.1f} s, exit {done.returncode}")
    checks.append(
        Check(
            f"invoke notebooks at {data.influencers:,} influencers",
            f"{seconds:.1f} s" + ("" if done.returncode == 0 else f", failed: {tail[-1:]}"),
            f"< {NOTEBOOKS_LIMIT_S:.0f} s",
            done.returncode == 0 and seconds < NOTEBOOKS_LIMIT_S,
        )
    )
    return checks


def _deep_pages(
    base: str, slugs: Sequence[str], page: int, niches: int = 4
) -> tuple[list[str], list[str]]:
    """Follow nextCursor to `page` in the most popular niches: (deep paths, page-1 paths)."""
    deep: list[str] = []
    first: list[str] = []
    for slug in slugs[:niches]:
        path = f"/influencers?niche={quote(slug)}&limit=20"
        first.append(path)
        current = path
        for _ in range(page - 1):
            status, body = fetch(base, current)
            cursor = body.get("nextCursor") if status == 200 and isinstance(body, dict) else None
            if not cursor:
                break
            current = f"{path}&cursor={quote(str(cursor), safe='')}"
        else:
            deep.append(current)
    return deep, first
