"""`invoke loadtest`: drive the running service with locust and check what it promised.

While locust runs (a subprocess, headless), PostgreSQL's connections from the service
are sampled twice a second; afterwards every acknowledged sign-up is read back.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cloutsy.db import current

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass
class Report:
    """What a load run measured."""

    requests: int = 0
    failures: int = 0
    server_errors: int = 0
    rps: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max_connections: int = 0
    acknowledged: int = 0
    unreadable: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)
    failure_rows: list[dict[str, str]] = field(default_factory=list)

    def table(self) -> str:
        lines = [
            f"{'endpoint':32} {'reqs':>7} {'fail':>5} {'req/s':>8} {'p50':>6} {'p95':>6} {'p99':>6}"
        ]
        for row in self.rows:
            lines.append(
                f"{row['Name'][:32]:32} {row['Request Count']:>7} {row['Failure Count']:>5} "
                f"{float(row['Requests/s']):8.1f} {row['50%']:>6} {row['95%']:>6} {row['99%']:>6}"
            )
        return "\n".join(lines)


def _count_connections(stop: threading.Event, seen: list[int]) -> None:
    db = current()
    db.close_all()  # this process's idle connections must not be counted as the service's
    with db.connection_context():
        while not stop.is_set():
            # Our own sampling connection is excluded by its pid.
            row = db.execute_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cloutsy' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            seen.append(int(row[0]))
            stop.wait(0.5)


def _read_back(url: str, ids_file: Path) -> tuple[int, int]:
    """Read every acknowledged account; return (acknowledged, unreadable)."""
    if not ids_file.exists():
        return 0, 0
    lines = [line.split() for line in ids_file.read_text().splitlines() if line.strip()]
    unreadable = 0
    for kind, account_id in lines:
        try:
            with urllib.request.urlopen(f"{url}/{kind}s/{account_id}", timeout=10) as resp:
                ok = resp.status == 200
        except (urllib.error.URLError, OSError):
            ok = False
        unreadable += not ok
    return len(lines), unreadable


def run(url: str, users: int, seconds: int, progress: Callable[[str], None] = print) -> Report:
    """Run the mix against `url` for `seconds` with `users` simulated clients."""
    work = Path(tempfile.mkdtemp(prefix="cloutsy-load-"))
    ids_file = work / "ids.txt"
    env = dict(
        os.environ,
        CLOUTSY_LOADTEST_IDS=str(ids_file),
        CLOUTSY_LOADTEST_RUN=str(int(time.time()) % 1000),
    )
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "-u",
        str(users),
        "-r",
        str(max(1, users // 5)),
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--csv",
        str(work / "run"),
        "--loglevel",
        "WARNING",
    ]
    stop = threading.Event()
    seen: list[int] = []  # connections in use, one sample per half second
    sampler = threading.Thread(target=_count_connections, args=(stop, seen), daemon=True)
    sampler.start()
    progress(f"load: {users} users for {seconds} s against {url} ...")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    stop.set()
    sampler.join(timeout=5)
    stats = work / "run_stats.csv"
    if not stats.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"locust produced no statistics: {tail}")
    report = Report()
    with stats.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                report.requests = int(row["Request Count"])
                report.failures = int(row["Failure Count"])
                report.rps = float(row["Requests/s"])
                report.p50, report.p95, report.p99 = (
                    float(row[k] or 0) for k in ("50%", "95%", "99%")
                )
            else:
                report.rows.append(row)
    failures = work / "run_failures.csv"
    if failures.exists():
        with failures.open() as fh:
            report.failure_rows = list(csv.DictReader(fh))
    report.server_errors = sum(
        int(r["Occurrences"])
        for r in report.failure_rows
        if re.search(r"\b5\d\d\b", r.get("Error", ""))
    )
    report.max_connections = max(seen, default=0)
    progress("load: reading every acknowledged sign-up back ...")
    report.acknowledged, report.unreadable = _read_back(url, ids_file)
    return report
