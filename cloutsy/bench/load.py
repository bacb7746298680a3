"""The load generator: wrk runs with the bench's shape, their results, and the statistics.

wrk runs 16 connections on 2 threads, a discarded warm-up, then the measured seconds.
Each request script runs between `threads.lua` (numbers the threads) and `report.lua`,
whose `done()` hook prints one `BENCH {...}` line that `parse_wrk` reads. Rounds are
summarised as medians, errors summed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cloutsy import debian
from cloutsy.bench import BenchError
from cloutsy.progress import Say

HERE = Path(__file__).resolve().parent
CONNECTIONS = 16
THREADS = 2
WARMUP_S = 3
ENDPOINTS = ("by id", "by niche")
# A client revalidating an unchanged profile (If-None-Match -> 304), service only; its ratio
# is taken against the baseline's full read of a profile.
REVALIDATE = "304 by id"
BASELINE_ENDPOINT = {REVALIDATE: "by id"}
STACKS = ("service", "baseline", "constant")
# The service with POSTGRES_PREPARED_STATEMENTS=false, measured right after "service".
UNPREPARED = "no-prep"


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

    def brief(self) -> str:
        """One progress line: req/s, p50, p99, errors."""
        return (
            f"{self.rps:8.0f} req/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  "
            f"errors {self.errors}"
        )


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


def median_result(runs: Sequence[WrkResult]) -> WrkResult:
    """The run of median req/s, with median latencies and the errors of every run."""
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


def ensure_wrk(progress: Say) -> str:
    """The wrk binary, installed from Debian's packages when missing."""
    return debian.ensure_binary("wrk", "wrk", progress)


@dataclass
class Wrk:
    """wrk with the bench's shape (16 connections, 2 threads) and Lua-reported results."""

    binary: str
    workdir: Path

    def script(self, name: str) -> Path:
        """`name`.lua between the shared `threads.lua` and `report.lua`, written to workdir."""
        path = self.workdir / f"{name}.run.lua"
        if not path.exists():
            parts = ("threads.lua", f"{name}.lua", "report.lua")
            path.write_text("\n".join((HERE / part).read_text() for part in parts))
        return path

    def paths_file(self, name: str, paths: Sequence[str]) -> Path:
        """The request paths `paths.lua` cycles through, one a line, written to workdir."""
        path = self.workdir / f"{name}.paths"
        path.write_text("\n".join(paths) + "\n")
        return path

    def argv(
        self,
        url: str,
        script: Path,
        args: Sequence[str] = (),
        duration: float = 10,
        connections: int = CONNECTIONS,
        timeout_s: int = 5,
    ) -> list[str]:
        """The wrk command line: `connections` on up to 2 threads for `duration` seconds."""
        return [
            self.binary,
            f"-t{min(THREADS, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(script),
            url,
            "--",
            *args,
        ]

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
        argv = self.argv(base + "/", self.script(script), args, duration, connections, timeout_s)
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

    def measure_paths(self, base: str, paths: Path, duration: float, **shape: int) -> WrkResult:
        """`measure` with `paths.lua` cycling through the paths file `paths`."""
        return self.measure(base, "paths", [str(paths)], duration, **shape)
