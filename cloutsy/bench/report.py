"""What `invoke bench` prints: the table per server, the sign-up rates, pass/fail checks.

The targets live here: the service reads at least TARGET_RATIO times the baseline's
requests/s with no errors, and influencer sign-ups at least 300/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloutsy.bench.load import ENDPOINTS, UNPREPARED, Row, WrkResult

TARGET_RATIO = 4.0


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
        """The table, the sign-up rates and the checks, separated by blank lines."""
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
    """Everything `invoke bench` prints: a section per server, then the other checks and notes."""

    sections: list[Section]
    checks: list[Check]  # not tied to one server (--scale)
    notes: list[str]

    def render(self) -> str:
        """One table per server version with its writes and checks, as `invoke bench` prints."""
        parts = [s.render() for s in self.sections]
        if self.checks:
            parts.append(_render_checks(self.checks))
        parts += self.notes
        return "\n\n".join(parts)


def unprepared_notes(rows: Sequence[Row]) -> list[str]:
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


def ratio_checks(rows: Sequence[Row]) -> list[Check]:
    """The service against the baseline, per endpoint: at least TARGET_RATIO, no errors."""
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


def write_checks(writes: dict[str, WrkResult]) -> list[Check]:
    """Influencer sign-ups (three niches each): at least 300/s, no errors."""
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
