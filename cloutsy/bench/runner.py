"""Run the bench: a dataset per server version, the stacks one at a time, checks, one report.

Every stack is measured one after another on the same data in the same run, so
the ratio to the baseline is what counts, not the absolute requests/s of this
machine. Each server gets one worker and a pool of 5, wrk 16 connections on 2
threads, a warm-up, then `duration` seconds per endpoint.

First the baseline answers a sample of ids and niche pages, and the service
(started as `invoke serve` runs it in production) must answer the same JSON.
Then each round measures the service (reads, then sign-ups), the baseline and
the constant app, in an order rotated every round. `--scale` adds a
1,000,000-influencer database for the list, keyset and search checks.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloutsy.bench import BenchError
from cloutsy.bench.compare import answers, check_same_json, revalidation_tag
from cloutsy.bench.load import (
    ENDPOINTS,
    REVALIDATE,
    STACKS,
    UNPREPARED,
    Wrk,
    WrkResult,
    ensure_wrk,
    median_result,
    summarise,
)
from cloutsy.bench.report import (
    Report,
    Section,
    ratio_checks,
    unprepared_notes,
    write_checks,
)
from cloutsy.bench.servers import start_stack
from cloutsy.bench.workload import (
    Dataset,
    Workload,
    cursor,
    drop,
    forget_writes,
    prepare_dataset,
    workload,
)
from cloutsy.config import Settings
from cloutsy.progress import Say

Results = dict[tuple[str, str], WrkResult]


@dataclass
class Options:
    """What `invoke bench` asks for."""

    rounds: int = 1
    duration: float = 10.0
    influencers: int = 100_000
    brands: int = 10_000
    scale: bool = False
    scale_influencers: int = 1_000_000
    writes: bool = True
    fresh: bool = False
    drop: bool = False
    # Also read with POSTGRES_PREPARED_STATEMENTS=false (PgBouncer transaction mode).
    unprepared: bool = True
    # Also measure on a throwaway Debian PostgreSQL 15 cluster (issue 14: its planner differs).
    pg15: bool = True
    scale_brands: int = 100_000
    scale_days: int = 730


@dataclass
class Target:
    """A server the bench measures on: a title and the dataset seeded on it."""

    title: str
    data: Dataset


def stack_order(number: int) -> list[str]:
    """Stacks of round `number`, rotated each round so no stack always runs first or last."""
    shift = (number - 1) % len(STACKS)
    return [*STACKS[shift:], *STACKS[:shift]]


def run(settings: Settings, options: Options, progress: Say) -> Report:
    """Seed (or reuse) the dataset on each server version, run every round, writes, scale."""
    if options.rounds < 1 or options.duration < 1:
        raise BenchError("rounds and duration must be at least 1")
    wrk_binary = ensure_wrk(progress)
    notes = []
    busy = _competing_load()
    if busy:
        progress(busy)
        notes.append(busy)
    with contextlib.ExitStack() as stack:
        data = prepare_dataset(
            settings, options.influencers, options.brands, progress, options.fresh
        )
        targets = [Target(_version_title(data, settings), data)]
        if options.pg15:
            from cloutsy.clusters import Cluster

            pgdata = settings.data_dir / "pg15-bench" / "pgdata"
            cluster = stack.enter_context(Cluster.create(pgdata, 15, progress))
            progress(f"PostgreSQL 15 cluster on 127.0.0.1:{cluster.port} (pid {cluster.pid})")
            other = settings.with_overrides(database_url=cluster.url())
            data15 = prepare_dataset(
                other, options.influencers, options.brands, progress, options.fresh
            )
            targets.append(Target("PostgreSQL 15 (throwaway Debian cluster)", data15))
        sections = [_measure(target, options, wrk_binary, progress) for target in targets]
        for section in sections:  # what PgBouncer's transaction mode costs, per server
            notes += [f"{section.title}: {n}" for n in unprepared_notes(section.rows)]
        report = Report(sections, [], notes)
        if options.scale:
            from cloutsy.bench.scale import scale_checks

            report.checks += scale_checks(
                settings, data, sections[0].rows, options, wrk_binary, progress
            )
        if options.drop:
            scaled = [f"cloutsy_bench_{options.scale_influencers}"] if options.scale else []
            drop(settings, [data.name, *scaled])
    return report


def _competing_load() -> str | None:
    """A warning when other processes already keep the CPUs busy (figures get noisy)."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load <= cpus / 2:
        return None
    return (
        f"warning: load average {load:.1f} on {cpus} CPUs before the bench started: other "
        "processes compete, so trust the ratios over absolute figures, and use --rounds"
    )


def _version_title(data: Dataset, settings: Settings) -> str:
    with cursor(data.dsn) as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0].split()[0]
    where = "embedded" if settings.embedded else "configured server"
    return f"PostgreSQL {version} ({where})"


def _measure(target: Target, options: Options, wrk_binary: str, progress: Say) -> Section:
    """Every round on one server: the stacks under wrk, the JSON check, the sign-ups."""
    data = target.data
    progress(target.title)
    load = workload(data.dsn)
    rounds: list[Results] = []
    writes: dict[str, list[WrkResult]] = {}
    with tempfile.TemporaryDirectory(prefix="cloutsy-bench-") as tmp:
        work = Path(tmp)
        wrk = Wrk(wrk_binary, work)
        files = {
            "by id": wrk.paths_file("by_id", load.by_id),
            "by niche": wrk.paths_file("by_niche", load.by_niche),
        }

        def reads(url: str, stack: str, results: Results) -> None:
            for endpoint in ENDPOINTS:
                result = wrk.measure_paths(url, files[endpoint], options.duration)
                results[(endpoint, stack)] = result
                progress(f"  {stack:<9}{endpoint:<10}{result.brief()}")

        for number in range(1, options.rounds + 1):
            progress(f"round {number}/{options.rounds}")
            results: Results = {}
            reference = None
            if number == 1:
                with start_stack(data, "baseline", work) as server:
                    reference = answers(server.url, load.sample)
            for stack in stack_order(number):
                with start_stack(data, stack, work) as server:
                    if reference is not None and stack == "service":
                        check_same_json(reference, answers(server.url, load.sample), progress)
                    reads(server.url, stack, results)
                    if stack == "service":
                        path = load.by_id[0]
                        tag = revalidation_tag(server.url, path)
                        result = wrk.measure(
                            server.url, "revalidate", [path, tag], options.duration
                        )
                        results[(REVALIDATE, stack)] = result
                        progress(f"  {stack:<9}{REVALIDATE:<10}{result.brief()}")
                    if stack == "service" and options.writes:
                        for what, r in _writes(wrk, server.url, data, load, options).items():
                            writes.setdefault(what, []).append(r)
                if stack == "service" and options.unprepared:
                    with start_stack(data, UNPREPARED, work) as server:
                        reads(server.url, UNPREPARED, results)
            rounds.append(results)
    rows = summarise(rounds)
    section = Section(target.title, rows, {k: median_result(v) for k, v in writes.items()}, [])
    section.checks += ratio_checks(rows)
    section.checks += write_checks(section.writes)
    return section


def _writes(
    wrk: Wrk, base: str, data: Dataset, load: Workload, options: Options
) -> dict[str, WrkResult]:
    """Sign-ups under load (unique values per request), then forget them."""
    niche_ids = ",".join(str(i) for i in load.niche_ids[:6])
    results = {}
    try:
        for kind, label in (("influencers", "influencer sign-ups"), ("brands", "brand sign-ups")):
            nonce = f"{random.randint(10, 99)}"
            shape = {"timeout_s": 5}
            if kind == "brands":
                # Argon2 takes ~0.15 s of a core on purpose, and a worker hashes at most
                # one password per core at a time (more get 503 + Retry-After, issue 12):
                # as many connections as cores measure the hashing rate, not refusals.
                shape = {"timeout_s": 30, "connections": os.cpu_count() or 2}
            results[label] = wrk.measure(
                base, "signup", [kind, nonce, niche_ids], options.duration, warmup=0, **shape
            )
    finally:
        with cursor(data.dsn) as cur:
            forget_writes(cur)
    return results
