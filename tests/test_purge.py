"""invoke db.purge: expired codes, sessions and limit counters go, in batches; the rest stays."""

from __future__ import annotations

import datetime as dt

from cloutsy.models import Otp, RateLimitHit, Session, utcnow
from cloutsy.services import purge

NOW = utcnow()


def _otp(expires: dt.datetime) -> None:
    Otp.create(phone="+919800000001", otp="x" * 64, expires_at=expires)


def _session(n: int, expires: dt.datetime, revoked: dt.datetime | None = None) -> None:
    Session.create(
        token_hash=f"{n:064d}",
        subject_type="influencer",
        subject_id=1,
        expires_at=expires,
        revoked_at=revoked,
    )


def _hit(expires: dt.datetime) -> None:
    RateLimitHit.create(name="login_email", key_hash="k" * 64, at=NOW, expires_at=expires)


def test_purge_deletes_only_what_expired_in_batches(db):
    past, future = NOW - dt.timedelta(seconds=1), NOW + dt.timedelta(minutes=5)
    for _ in range(5):
        _otp(past)
        _hit(past)
    _otp(future)
    _hit(future)
    _session(1, past)  # expired
    _session(2, past, revoked=NOW - dt.timedelta(days=2))  # revoked and expired
    _session(3, future, revoked=NOW - dt.timedelta(hours=1))  # revoked: goes at its expiry
    _session(4, future)  # live
    batches: list[tuple[str, int]] = []

    done = purge.purge(NOW, batch=2, progress=lambda label, total: batches.append((label, total)))

    assert done == {
        "expired OTP codes": 5,
        "expired sessions": 2,
        "limit counters": 5,
        "idempotency keys": 0,
    }
    assert [t for label, t in batches if label == "limit counters"] == [2, 4, 5]
    assert Otp.select().count() == 1 and RateLimitHit.select().count() == 1
    assert sorted(int(s.token_hash) for s in Session.select()) == [3, 4]
    assert purge.purge(NOW) == dict.fromkeys(done, 0)  # nothing left: a second run is a no-op


def test_every_step_walks_an_index_on_its_expiry(db):
    db.execute_sql("SET LOCAL enable_seqscan = off")
    for step in purge.STEPS:
        model = step.model
        query = model.select(model.id).where(step.expired(NOW)).limit(10)
        sql, params = query.sql()
        plan = "\n".join(r[0] for r in db.execute_sql("EXPLAIN " + sql, params).fetchall())
        assert "Index" in plan and "Seq Scan" not in plan, (step.label, plan)
