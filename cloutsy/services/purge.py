"""Remove rows that no longer mean anything: expired codes, sessions, limit hits and keys.

Each kind of leftover is one `Step` (a table and what "expired" means for it); adding a
kind is one more line in STEPS. Rows go in
batches, each its own short transaction walking an index on the expiry column, so a
purge never holds long locks nor bloats one huge transaction, and can be stopped and
run again at any time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peewee import Expression, Model

from cloutsy.db import database
from cloutsy.models import IdempotencyKey, Otp, RateLimitHit, Session


@dataclass(frozen=True)
class Step:
    """One kind of leftover: rows of `model` for which `expired(now)` holds."""

    label: str
    model: type[Model]
    expired: Callable[[dt.datetime], Expression]


STEPS: tuple[Step, ...] = (
    Step("expired OTP codes", Otp, lambda now: Otp.expires_at <= now),
    # A revoked session goes when it would have expired (at most 30 days): it is dead
    # already, and the expiry index serves the whole purge.
    Step("expired sessions", Session, lambda now: Session.expires_at <= now),
    Step("limit counters", RateLimitHit, lambda now: RateLimitHit.expires_at <= now),
    # Kept 24 h (CONTRACT §5); a replay after that is a new attempt.
    Step("idempotency keys", IdempotencyKey, lambda now: IdempotencyKey.expires_at <= now),
)


def purge_step(step: Step, now: dt.datetime, batch: int) -> int:
    """Delete up to `batch` expired rows of one step in one transaction; return how many."""
    model: Any = step.model
    doomed = model.select(model.id).where(step.expired(now)).limit(batch)
    with database.atomic():
        return int(model.delete().where(model.id.in_(doomed)).execute())


def purge(
    now: dt.datetime,
    batch: int = 1000,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Run every step to the end in batches of `batch`; return rows deleted per step."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    done: dict[str, int] = {}
    for step in STEPS:
        total = 0
        while True:
            deleted = purge_step(step, now, batch)
            total += deleted
            if progress is not None and deleted:
                progress(step.label, total)
            if deleted < batch:
                break
        done[step.label] = total
    return done


def compact_rollups() -> int:
    """Fold the analytics rollups' insert-only deltas into one row per key (migration 0005).

    The triggers only ever insert signed deltas (so concurrent sign-ups never wait on a
    shared counter row); left alone those rows grow with every write. Returns the rows
    folded away. Sums are unchanged, so it is safe while the service writes.
    """
    tables = ("rollup_signups", "rollup_niches", "rollup_niche_counts", "rollup_niche_pairs")
    count = "SELECT " + " + ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    with database.atomic():
        before = int(database.execute_sql(count).fetchone()[0])
        database.execute_sql("SELECT cloutsy_rollups_compact()")
        return before - int(database.execute_sql(count).fetchone()[0])
