"""Run the bench: dataset, one server at a time, wrk under load, checks and one table.

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

import base64
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

from cloutsy.config import PROJECT_ROOT, Settings
from cloutsy.errors import TaskError

HERE = Path(__file__).resolve().parent
CONNECTIONS = 16
THREADS = 2
WARMUP_S = 3
POOL_MAX = 5
TARGET_RATIO = 4.0
ENDPOINTS = ("by id", "by niche")
# A client revalidating an unchanged profile (If-None-Match -> 304), service only; its ratio
# is taken against the baseline's full read of a profile.
REVALIDATE = "304 by id"
BASELINE_ENDPOINT = {REVALIDATE: "by id"}
STACKS = ("service", "baseline", "constant")
# The service with POSTGRES_PREPARED_STATEMENTS=false, measured right after "service".
UNPREPARED = "no-prep"
BENCH_EMAIL_DOMAIN = "bench.example.com"

Progress = Callable[[str], None]


class BenchError(TaskError):
    """The bench could not run or its checks could not start."""


# --- wrk output and statistics -----------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, from the `BENCH {...}` line its Lua `done()` hook prints."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    error_detail: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def parse_wrk(output: str) -> WrkResult:
    """Read the machine-readable line of `report.lua` out of wrk's output."""
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[len("BENCH ") :])
            detail = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")}
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p90_ms=data["p90_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                errors=sum(detail.values()),
                error_detail=detail,
            )
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    raise BenchError(f"wrk printed no BENCH line (last line: {last})")


@dataclass(frozen=True)
class Row:
    """One line of the table: medians over rounds, errors summed, ratio to the baseline."""

    endpoint: str
    stack: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio: float | None


def summarise(
    rounds: Sequence[dict[tuple[str, str], WrkResult]], baseline: str = "baseline"
) -> list[Row]:
    """Median of each figure over rounds; the ratio is the median of per-round ratios.

    Ratios are taken within a round first because stacks measured side by side
    share that round's machine noise.
    """
    keys: list[tuple[str, str]] = []
    for results in rounds:
        keys += [k for k in results if k not in keys]
    rows = []
    for endpoint, stack in keys:
        runs = [r[(endpoint, stack)] for r in rounds if (endpoint, stack) in r]
        base = (BASELINE_ENDPOINT.get(endpoint, endpoint), baseline)
        ratios = [
            r[(endpoint, stack)].rps / r[base].rps
            for r in rounds
            if (endpoint, stack) in r and base in r and r[base].rps
        ]
        rows.append(
            Row(
                endpoint=endpoint,
                stack=stack,
                rps=statistics.median(x.rps for x in runs),
                p50_ms=statistics.median(x.p50_ms for x in runs),
                p99_ms=statistics.median(x.p99_ms for x in runs),
                errors=sum(x.errors for x in runs),
                ratio=statistics.median(ratios) if ratios else None,
            )
        )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as a fixed-width text table."""
    head = f"{'endpoint':<14}{'stack':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    head += f"{'errors':>8}{'vs baseline':>13}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        lines.append(
            f"{r.endpoint:<14}{r.stack:<10}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.errors:>8}{ratio:>13}"
        )
    return "\n".join(lines)


# --- JSON comparison ---------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Parse timestamps (keys ending in `At`) so equal instants compare equal."""
    if isinstance(value, dict):
        return {
            k: _instant(v) if k.endswith("At") and isinstance(v, str) else normalise(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def _instant(text: str) -> dt.datetime | str:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return text


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    """Where two normalised JSON values first differ, as a short path and both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                return f"{where}.{key} missing"
            if key not in expected:
                return f"{where}.{key} unexpected"
            found = first_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where} has {len(actual)} items, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(e, a, f"{where}[{i}]")
            if found:
                return found
        return None
    if expected != actual or type(expected) is not type(actual):
        return f"{where or 'body'}: {actual!r}, expected {expected!r}"
    return None


def fetch(base: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    """GET base+path; (status, parsed JSON body or None)."""
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(body or b"null")
        return exc.code, None


def revalidation_tag(base: str, path: str, timeout: float = 10.0) -> str:
    """The ETag of base+path, checked to turn a revalidation into a 304 with no body."""
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as resp:
            tag = resp.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        raise BenchError(f"GET {path} answered {exc.code}: no ETag to revalidate") from None
    if not tag:
        raise BenchError(f"GET {path} carries no ETag")
    request = urllib.request.Request(base + path, headers={"If-None-Match": tag})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if status != 304 or body:
        raise BenchError(f"GET {path} with If-None-Match gave {status}, not an empty 304")
    return tag


def answers(base: str, paths: Sequence[str]) -> dict[str, tuple[int, Any]]:
    """Status and comparable body for each path (list endpoints: items only)."""
    out = {}
    for path in paths:
        status, body = fetch(base, path)
        if status == 200 and isinstance(body, dict) and "items" in body:
            body = body["items"]
        out[path] = (status, normalise(body) if status == 200 else None)
    return out


def compare_answers(
    expected: dict[str, tuple[int, Any]], actual: dict[str, tuple[int, Any]]
) -> list[str]:
    """One line per path where the service's answer is not the baseline's."""
    problems = []
    for path, (status, body) in expected.items():
        got_status, got_body = actual.get(path, (0, None))
        if got_status != status:
            problems.append(f"GET {path}: status {got_status}, expected {status}")
            continue
        diff = first_difference(body, got_body)
        if diff:
            problems.append(f"GET {path}: {diff}")
    return problems


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess in its own process group: started, awaited healthy, SIGTERMed.

    Its own group lets SIGTERM reach gunicorn's master (and through it the
    worker) even when `invoke serve` sits in between, and nothing else.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logs: Path):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = logs / f"{name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited at start-up: {self.last_log_line()}")
            with contextlib.suppress(OSError, ValueError):
                if fetch(self.base, "/health", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not healthy after {timeout:.0f} s: {self.last_log_line()}")

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][:300]
        return "(no output)"

    def stop(self) -> None:
        """SIGTERM the group, give it 20 s, then SIGKILL it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # The group may outlive its leader for a moment (the worker finishing).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            for _ in range(50):
                os.killpg(self.proc.pid, 0)
                time.sleep(0.1)


def gunicorn_argv(app: str, port: int) -> list[str]:
    """gunicorn with one sync worker, as the user's alternative would be deployed."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--no-control-socket",
        "--log-level",
        "warning",
        app,
    ]


def ensure_wrk(progress: Progress) -> str:
    """The wrk binary; installed from Debian's packages when missing (root only)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BenchError("wrk is not installed (install it: apt-get install -y wrk)")
    progress("installing wrk from Debian's packages ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise BenchError(f"could not install wrk: {tail[-1] if tail else argv}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk still missing after apt-get install wrk")
    return found


@dataclass
class Wrk:
    """wrk with the bench's shape (16 connections, 2 threads) and Lua-reported results."""

    binary: str
    workdir: Path

    def script(self, name: str) -> Path:
        """`name`.lua with the shared `done()` reporter appended, written to workdir."""
        path = self.workdir / f"{name}.run.lua"
        if not path.exists():
            text = (HERE / f"{name}.lua").read_text() + "\n" + (HERE / "report.lua").read_text()
            path.write_text(text)
        return path

    def run(
        self,
        base: str,
        script: str,
        args: Sequence[str],
        duration: float,
        connections: int = CONNECTIONS,
        timeout_s: int = 5,
    ) -> WrkResult:
        """Load `base` for `duration` seconds; raise if wrk fails or hangs."""
        argv = [
            self.binary,
            f"-t{min(THREADS, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(self.script(script)),
            base + "/",
            "--",
            *args,
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish within {duration + 60:.0f} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise BenchError(f"wrk failed: {tail[-1] if tail else done.returncode}")
        return parse_wrk(done.stdout)

    def measure(
        self,
        base: str,
        script: str,
        args: Sequence[str],
        duration: float,
        warmup: float = WARMUP_S,
        **shape: int,
    ) -> WrkResult:
        """A discarded warm-up run, then the measured one (`shape`: connections, timeout_s)."""
        if warmup > 0:
            self.run(base, script, args, warmup, **shape)
        return self.run(base, script, args, duration, **shape)


# --- the dataset -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A seeded bench database and how each process reaches it."""

    name: str
    dsn: str  # psycopg2 DSN of the bench database
    settings: Settings  # settings pointing at it (embedded or external server)
    influencers: int
    brands: int

    def server_env(self, port: int) -> dict[str, str]:
        """Environment of a server under test: production, one worker, pool of 5, this db."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLOUTSY_", "POSTGRES_")) and k != "DATABASE_URL"
        }
        env.update(
            CLOUTSY_ENV="production",
            CLOUTSY_WORKERS="1",
            CLOUTSY_HOST="127.0.0.1",
            CLOUTSY_PORT=str(port),
            CLOUTSY_SECRET_KEY=secrets.token_hex(16),
            # The keys the data was seeded with (production requires them to be set).
            CLOUTSY_DATA_KEYS=",".join(
                f"{key_id}:{base64.b64encode(key).decode()}"
                for key_id, key in self.settings.data_keys
            ),
            CLOUTSY_LOOKUP_KEY=base64.b64encode(self.settings.lookup_key).decode(),
            CLOUTSY_DATA_DIR=str(self.settings.data_dir),
            POSTGRES_POOL_MAX=str(POOL_MAX),
            CLOUTSY_BENCH_DSN=self.dsn,
            # The bench measures capacity from one address; the abuse limits would turn its
            # sign-ups into 429s after 60 (they are tested in tests/test_attacks.py).
            CLOUTSY_RATE_LIMITS="signup_address=off",
        )
        # Always by URL: production refuses to start the embedded server itself (issue 12),
        # and the bench's embedded server is already running under its own data dir. As
        # the least-privilege app role, as in production (it refuses a superuser, §9).
        env["DATABASE_URL"] = self.app_dsn
        return env

    @property
    def app_dsn(self) -> str:
        """The dataset's URL as `cloutsy_app` (trust on the bench servers: no password)."""
        from cloutsy import roles
        from cloutsy.db import with_user

        return with_user(self.dsn, roles.APP)


def _with_database(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path="/" + quote(name)))


def dataset_settings(settings: Settings, name: str) -> tuple[Settings, str, str]:
    """(settings, DSN, admin DSN) for database `name` on the configured server."""
    from cloutsy import embedded

    if settings.embedded:
        pgdata = settings.data_dir / "pgdata"
        return (
            settings.with_overrides(postgres_db=name),
            embedded.server_uri(pgdata, name),
            embedded.server_uri(pgdata, "postgres"),
        )
    url = settings.external_url() or ""
    dsn = _with_database(url, name)
    return settings.with_overrides(database_url=dsn), dsn, _with_database(url, "postgres")


def _counts(dsn: str) -> tuple[int, int] | None:
    """(influencers, brands) in a migrated bench database, None when it is not one."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('influencers') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            _forget_writes(cur)
            cur.execute("SELECT (SELECT count(*) FROM influencers), (SELECT count(*) FROM brands)")
            influencers, brands = cur.fetchone()
            return int(influencers), int(brands)
    finally:
        conn.close()


def _forget_writes(cur: Any) -> None:
    """Delete the accounts the write runs signed up (their links cascade)."""
    # By name, as signup.lua writes them: emails are ciphertext (CONTRACT §9).
    cur.execute("DELETE FROM influencers WHERE name LIKE 'Bench Influencer %%'")
    cur.execute("DELETE FROM brands WHERE brand_name LIKE 'Bench Brand %%'")


def prepare_dataset(
    settings: Settings,
    influencers: int,
    brands: int,
    progress: Progress,
    fresh: bool = False,
    days: int = 365,
) -> Dataset:
    """A database `cloutsy_bench_<influencers>` seeded with seed.demo, reused when it matches.

    Seeding is deterministic (random_seed=42), so a database holding the same
    row counts holds the same data and the next run skips the ~15 s of seeding.
    """
    from cloutsy import catalogue, embedded, migrations, roles
    from cloutsy.db import close_database, database, init_database

    name = f"cloutsy_bench_{influencers}"
    bench_settings, dsn, admin = dataset_settings(settings, name)
    embedded.ensure_database(admin, name)
    dataset = Dataset(name, dsn, bench_settings, influencers, brands)
    if not fresh and _counts(dsn) == (influencers, brands):
        progress(f"dataset {name}: reusing {influencers:,} influencers, {brands:,} brands")
        # A database kept from an earlier run may predate a migration: the service in
        # production mode would answer 503 (pending migrations) until it is applied.
        init_database(bench_settings.with_overrides(statement_timeout_ms=0), url=dsn)
        try:
            with database.connection_context():
                applied = migrations.apply()
        finally:
            close_database()
        if applied:
            progress(f"dataset {name}: applied {', '.join(applied)}")
        roles.ensure_on(dsn, name, bench_settings, ())
        return dataset

    progress(f"dataset {name}: seeding {influencers:,} influencers, {brands:,} brands ...")
    try:
        from cloutsy.demo import seed_demo
    except ImportError:
        raise BenchError("cloutsy.demo is missing: seed.demo is needed to seed the bench") from None
    embedded.drop_database(admin, name)
    embedded.ensure_database(admin, name)
    started = time.monotonic()
    # Bulk loads and index builds outlast the service's 5 s statement timeout.
    init_database(bench_settings.with_overrides(statement_timeout_ms=0), url=dsn)
    try:
        with database.connection_context():
            migrations.apply()
            catalogue.seed_niches()
        seed_demo(influencers, brands, days, random_seed=42, progress=_stages(progress))
        with database.connection_context():
            database.execute_sql("ANALYZE")
    finally:
        close_database()
    roles.ensure_on(dsn, name, bench_settings, ())  # the service serves as cloutsy_app
    progress(f"dataset {name}: seeded in {time.monotonic() - started:.0f} s")
    return dataset


def _stages(progress: Progress) -> Callable[[str, int, int], None]:
    """seed_demo's (stage, done, total) reports as one line per finished stage."""

    def report(stage: str, done: int, total: int) -> None:
        if done >= total:
            progress(f"  {stage}: {total:,}")

    return report


@dataclass(frozen=True)
class Workload:
    """The request paths the load scripts draw from, read once from the dataset."""

    by_id: list[str]  # /influencers/<active id>
    by_niche: list[str]  # first page of each niche with a full page
    sample: list[str]  # what the JSON check compares: ids, inactive, missing, pages
    slugs: list[str]  # niches by popularity, most popular first
    niche_ids: list[int]
    search_terms: list[str]


def workload(dsn: str, ids: int = 10_000, sample: int = 200) -> Workload:
    """Random existing active ids, niches with a full first page, words for `q`."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT setseed(0.42)")
            cur.execute(
                "SELECT id FROM influencers WHERE is_active ORDER BY random() LIMIT %s", (ids,)
            )
            active = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT id FROM influencers WHERE NOT is_active ORDER BY id LIMIT 5")
            inactive = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT coalesce(max(id), 0) FROM influencers")
            missing = cur.fetchone()[0] + 1000
            cur.execute(
                "SELECT n.slug, n.id FROM niches n JOIN influencer_niches l ON l.niche_id = n.id "
                "JOIN influencers i ON i.id = l.influencer_id WHERE i.is_active AND n.is_active "
                "GROUP BY n.id HAVING count(*) >= 20 ORDER BY count(*) DESC, n.id"
            )
            niches = cur.fetchall()
            cur.execute("SELECT name FROM influencers WHERE is_active ORDER BY random() LIMIT 300")
            names = [r[0].lower() for r in cur.fetchall()]
    finally:
        conn.close()
    if not active or not niches:
        raise BenchError("the bench database has no active influencers in any niche")
    pages = [f"/influencers?niche={slug}&limit=20" for slug, _ in niches]
    sample_paths = [f"/influencers/{i}" for i in [*active[:sample], *inactive, missing]]
    return Workload(
        by_id=[f"/influencers/{i}" for i in active],
        by_niche=pages,
        sample=sample_paths + pages,
        slugs=[slug for slug, _ in niches],
        niche_ids=[nid for _, nid in niches],
        search_terms=_search_terms(names),
    )


def _search_terms(names: Sequence[str], full_names: int = 50) -> list[str]:
    """What people type into `q`: single first or last names, and some full names."""
    words = sorted({w for n in names for w in n.split() if len(w) >= 3 and w.isalpha()})
    return words + list(names[:full_names])


# --- the bench ---------------------------------------------------------------------------


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
    service: bool = True
    # Also read with POSTGRES_PREPARED_STATEMENTS=false (PgBouncer transaction mode).
    unprepared: bool = True
    # Also measure on a throwaway Debian PostgreSQL 15 cluster (issue 14: its planner differs).
    pg15: bool = True
    scale_brands: int = 100_000
    scale_days: int = 730


@dataclass(frozen=True)
class Check:
    """A pass/fail line under the table."""

    name: str
    measured: str
    target: str
    ok: bool


@dataclass
class Section:
    """One server's results: its table, its sign-up rates and its checks."""

    title: str
    rows: list[Row]
    writes: dict[str, WrkResult]
    checks: list[Check]

    def render(self) -> str:
        parts = [self.title, format_table(self.rows)]
        if self.writes:
            lines = [f"{'writes (service)':<24}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
            for what, r in self.writes.items():
                lines.append(
                    f"{what:<24}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
                )
            parts.append("\n".join(lines))
        if self.checks:
            parts.append(_render_checks(self.checks))
        return "\n\n".join(parts)


def _render_checks(checks: Sequence[Check]) -> str:
    return "\n".join(
        f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.measured} (target {c.target})" for c in checks
    )


@dataclass
class Report:
    sections: list[Section]
    checks: list[Check]  # not tied to one server (--scale)
    notes: list[str]

    @property
    def rows(self) -> list[Row]:
        return [r for s in self.sections for r in s.rows]

    def render(self) -> str:
        """One table per server version with its writes and checks, as `invoke bench` prints."""
        parts = [s.render() for s in self.sections]
        if self.checks:
            parts.append(_render_checks(self.checks))
        parts += self.notes
        return "\n\n".join(parts)


def stack_order(number: int, with_service: bool = True) -> list[str]:
    """Stacks of round `number`, rotated each round so no stack always runs first or last."""
    stacks = [s for s in STACKS if with_service or s != "service"]
    shift = (number - 1) % len(stacks)
    return stacks[shift:] + stacks[:shift]


def service_available() -> bool:
    """True once the API package exists (the bench can run without it, minus one stack)."""
    import importlib.util

    return importlib.util.find_spec("cloutsy.api") is not None


def service_argv() -> list[str]:
    """`invoke serve`, exactly as production runs it (settings come from the environment)."""
    return [sys.executable, "-m", "invoke", "serve"]


@dataclass
class Target:
    """A server the bench measures on: a title and the dataset seeded on it."""

    title: str
    data: Dataset


def run(settings: Settings, options: Options, progress: Progress) -> Report:
    """Seed (or reuse) the dataset on each server version, run every round, writes, scale."""
    if options.rounds < 1 or options.duration < 1:
        raise BenchError("rounds and duration must be at least 1")
    wrk_binary = ensure_wrk(progress)
    with_service = options.service and service_available()
    notes = []
    busy = _competing_load()
    if busy:
        progress(busy)
        notes.append(busy)
    if options.service and not with_service:
        notes.append("service not measured: cloutsy.api is not there yet")
    with contextlib.ExitStack() as stack:
        data = prepare_dataset(
            settings, options.influencers, options.brands, progress, options.fresh
        )
        targets = [Target(_version_title(data, settings), data)]
        if options.pg15:
            from cloutsy.bench.clusters import Cluster

            cluster = stack.enter_context(
                Cluster(15, settings.data_dir / "pg15-bench", progress=progress)
            )
            progress(f"PostgreSQL 15 cluster on 127.0.0.1:{cluster.port} (pid {cluster.pid})")
            other = settings.with_overrides(database_url=cluster.dsn())
            data15 = prepare_dataset(
                other, options.influencers, options.brands, progress, options.fresh
            )
            targets.append(Target("PostgreSQL 15 (throwaway Debian cluster)", data15))
        sections = [
            _measure(target, options, with_service, wrk_binary, progress) for target in targets
        ]
        for section in sections:  # what PgBouncer's transaction mode costs, per server
            notes += [f"{section.title}: {n}" for n in _unprepared_notes(section.rows)]
        report = Report(sections, [], notes)
        if options.scale:
            if not with_service:
                raise BenchError("--scale measures the service: cloutsy.api is not there yet")
            report.checks += _scale_checks(
                settings, data, sections[0].rows, options, wrk_binary, progress
            )
        if options.drop:
            scaled = [f"cloutsy_bench_{options.scale_influencers}"] if options.scale else []
            _drop(settings, [data.name, *scaled])
    return report


def _version_title(data: Dataset, settings: Settings) -> str:
    import psycopg2

    conn = psycopg2.connect(data.dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0].split()[0]
    finally:
        conn.close()
    where = "embedded" if settings.embedded else "configured server"
    return f"PostgreSQL {version} ({where})"


def _measure(
    target: Target, options: Options, with_service: bool, wrk_binary: str, progress: Progress
) -> Section:
    """Every round on one server: the stacks under wrk, the JSON check, the sign-ups."""
    data = target.data
    progress(target.title)
    load = workload(data.dsn)
    rounds: list[dict[tuple[str, str], WrkResult]] = []
    writes: dict[str, list[WrkResult]] = {}
    with tempfile.TemporaryDirectory(prefix="cloutsy-bench-") as tmp:
        work = Path(tmp)
        wrk = Wrk(wrk_binary, work)
        files = {
            "by id": _paths_file(work, "by_id", load.by_id),
            "by niche": _paths_file(work, "by_niche", load.by_niche),
        }
        for number in range(1, options.rounds + 1):
            progress(f"round {number}/{options.rounds}")
            results: dict[tuple[str, str], WrkResult] = {}
            reference = None
            if with_service and number == 1:
                with _start(data, "baseline", work, progress) as server:
                    reference = answers(server.base, load.sample)
            for stack in stack_order(number, with_service):
                with _start(data, stack, work, progress) as server:
                    if reference is not None and stack == "service":
                        _check_same_json(reference, answers(server.base, load.sample), progress)
                    for endpoint in ENDPOINTS:
                        result = wrk.measure(
                            server.base, "paths", [str(files[endpoint])], options.duration
                        )
                        results[(endpoint, stack)] = result
                        progress(f"  {stack:<9}{endpoint:<10}{_brief(result)}")
                    if stack == "service":
                        path = load.by_id[0]
                        tag = revalidation_tag(server.base, path)
                        result = wrk.measure(
                            server.base, "revalidate", [path, tag], options.duration
                        )
                        results[(REVALIDATE, stack)] = result
                        progress(f"  {stack:<9}{REVALIDATE:<10}{_brief(result)}")
                    if stack == "service" and options.writes:
                        for what, r in _writes(wrk, server.base, data, load, options).items():
                            writes.setdefault(what, []).append(r)
                if stack == "service" and options.unprepared:
                    with _start(data, UNPREPARED, work, progress) as server:
                        for endpoint in ENDPOINTS:
                            result = wrk.measure(
                                server.base, "paths", [str(files[endpoint])], options.duration
                            )
                            results[(endpoint, UNPREPARED)] = result
                            progress(f"  {UNPREPARED:<9}{endpoint:<10}{_brief(result)}")
            rounds.append(results)
    rows = summarise(rounds)
    section = Section(target.title, rows, {k: _median_result(v) for k, v in writes.items()}, [])
    if with_service:
        section.checks += _ratio_checks(rows)
        section.checks += _write_checks(section.writes)
    return section


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


def _paths_file(work: Path, name: str, paths: Sequence[str]) -> Path:
    path = work / f"{name}.paths"
    path.write_text("\n".join(paths) + "\n")
    return path


def _brief(r: WrkResult) -> str:
    return f"{r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  errors {r.errors}"


@contextlib.contextmanager
def _start(data: Dataset, stack: str, work: Path, progress: Progress) -> Iterator[Server]:
    port = free_port()
    env = data.server_env(port)
    if stack == UNPREPARED:
        env["POSTGRES_PREPARED_STATEMENTS"] = "false"
    if stack in ("service", UNPREPARED):
        argv = service_argv()
    elif stack == "baseline":
        argv = gunicorn_argv("cloutsy.bench.baseline:create_app()", port)
    else:
        argv = gunicorn_argv("cloutsy.bench.constant:app", port)
    with Server(stack, argv, env, port, work) as server:
        yield server


def _check_same_json(
    reference: dict[str, tuple[int, Any]], got: dict[str, tuple[int, Any]], progress: Progress
) -> None:
    problems = compare_answers(reference, got)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(f"service and baseline disagree: {problems[0]}{more}")
    progress(f"  same JSON from service and baseline on {len(reference)} requests")


def _median_result(runs: Sequence[WrkResult]) -> WrkResult:
    ordered = sorted(runs, key=lambda r: r.rps)
    middle = ordered[len(ordered) // 2]
    return WrkResult(
        requests=middle.requests,
        duration_s=middle.duration_s,
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p90_ms=statistics.median(r.p90_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        error_detail=middle.error_detail,
    )


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
        import psycopg2

        conn = psycopg2.connect(data.dsn, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                _forget_writes(cur)
        finally:
            conn.close()
    return results


def _unprepared_notes(rows: Sequence[Row]) -> list[str]:
    """What turning prepared statements off (PgBouncer in transaction mode) costs the reads."""
    by = {(r.endpoint, r.stack): r for r in rows}
    parts = []
    for endpoint in ENDPOINTS:
        off, on = by.get((endpoint, UNPREPARED)), by.get((endpoint, "service"))
        if off is None or on is None or not on.rps:
            continue
        vs_base = f"{off.ratio:.2f}x baseline" if off.ratio is not None else "no baseline"
        parts.append(
            f"{endpoint}: {off.rps / on.rps:.2f}x the prepared service's req/s ({vs_base}, "
            f"{off.errors} errors)"
        )
    if not parts:
        return []
    return ["prepared statements off (POSTGRES_PREPARED_STATEMENTS=false): " + "; ".join(parts)]


def _ratio_checks(rows: Sequence[Row]) -> list[Check]:
    checks = []
    for r in rows:
        if r.stack != "service":
            continue
        ratio = r.ratio or 0.0
        checks.append(
            Check(
                f"{r.endpoint}: service vs baseline",
                f"{ratio:.2f}x, {r.errors} errors",
                f">= {TARGET_RATIO:.0f}x, 0 errors",
                ratio >= TARGET_RATIO and r.errors == 0,
            )
        )
    return checks


def _write_checks(writes: dict[str, WrkResult]) -> list[Check]:
    r = writes.get("influencer sign-ups")
    if r is None:
        return []
    return [
        Check(
            "influencer sign-ups with 3 niches",
            f"{r.rps:.0f}/s, {r.errors} errors",
            ">= 300/s, 0 errors",
            r.rps >= 300 and r.errors == 0,
        )
    ]


def _scale_checks(
    settings: Settings,
    small: Dataset,
    rows: Sequence[Row],
    options: Options,
    wrk_binary: str,
    progress: Progress,
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
        with _start(big, "service", work, progress) as server:
            page1 = wrk.measure(
                server.base,
                "paths",
                [str(_paths_file(work, "page1", load.by_niche))],
                options.duration,
            )
            progress(f"  by niche at {big.influencers:,}: {_brief(page1)}")
            ratio = page1.p50_ms / small_p50 if small_p50 else float("inf")
            checks.append(
                Check(
                    f"list p50 at {big.influencers:,} vs {small.influencers:,}",
                    f"{page1.p50_ms:.2f} ms vs {small_p50:.2f} ms = {ratio:.2f}x",
                    "<= 1.3x",
                    ratio <= 1.3 and page1.errors == 0,
                )
            )
            deep, first = _deep_pages(server.base, load.slugs, page=500)
            progress(f"  walked {len(deep)} niche(s) to page 500 by nextCursor")
            if deep:
                shallow = wrk.measure(
                    server.base, "paths", [str(_paths_file(work, "first", first))], options.duration
                )
                far = wrk.measure(
                    server.base, "paths", [str(_paths_file(work, "deep", deep))], options.duration
                )
                progress(f"  page 1:   {_brief(shallow)}")
                progress(f"  page 500: {_brief(far)}")
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
            searches = [str(_paths_file(work, "q", paths))]
            # "Answers in" is latency: one client at a time. Under 16 connections p50 is
            # mostly queueing (16 / throughput), printed for information.
            alone = wrk.measure(server.base, "paths", searches, options.duration, connections=1)
            loaded = wrk.measure(server.base, "paths", searches, options.duration)
            progress(f"  q search, 1 connection:   {_brief(alone)}")
            progress(f"  q search, 16 connections: {_brief(loaded)}")
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


def analytics_checks(data: Dataset, progress: Progress) -> list[Check]:
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
    env = data.server_env(free_port())
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


def _drop(settings: Settings, names: Sequence[str]) -> None:
    from cloutsy import embedded

    for name in names:
        _, _, admin = dataset_settings(settings, name)
        embedded.drop_database(admin, name)
