"""Phone verification by one-time codes: sent under per-phone limits, checked at most once.

A code is 6 random digits (`secrets`), stored only as HMAC-SHA256 keyed with
CLOUTSY_SECRET_KEY over phone and code, valid 5 minutes, used once, and dead after
more than 5 wrong tries. Only the newest code of a phone counts: a new send
supersedes the old one.

The send limits (1 per phone per 30 s, 5 per hour) are counted from the `otps` rows
themselves, inside a transaction holding an advisory lock on the phone: they hold across
server workers and restarts, and two concurrent sends for one phone cannot both pass.

Times come from `clock`, never SQL now(): tests replace it, and now() is frozen inside
the transaction a test runs in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

from cloutsy.db import database
from cloutsy.errors import BadRequest, CloutsyError, RateLimited
from cloutsy.logs import mask_phone
from cloutsy.models import Brand, Influencer, Otp, utcnow
from cloutsy.services import sessions
from cloutsy.services.lookup import holding, otp_key

log = logging.getLogger(__name__)

CODE_DIGITS = 6
LIFETIME = dt.timedelta(minutes=5)
MAX_WRONG = 5  # wrong tries a code survives; the next wrong one kills it (429)
RESEND_AFTER = dt.timedelta(seconds=30)
WINDOW = dt.timedelta(hours=1)
PER_WINDOW = 5
# First key of the two-key advisory lock: keeps these locks apart from any other user's.
LOCK_SPACE = 0x4F7470  # "Otp"
WRONG_CODE = "the code is wrong, expired or already used"

clock: Callable[[], dt.datetime] = utcnow


class Sender(Protocol):
    """Delivers a code to a phone (an SMS gateway in production)."""

    def send(self, phone: str, code: str) -> None: ...


class LogSender:
    """The default sender: logs that a code went out, to a masked number, never the code."""

    def send(self, phone: str, code: str) -> None:
        log.info("verification code sent to %s", mask_phone(phone))


@dataclass(frozen=True)
class Issued:
    """A code just sent and when it stops working."""

    code: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Verification:
    """A verified phone; the account holding it and a session token, when there is one."""

    account_type: str | None = None
    account_id: int | None = None
    token: str | None = None


def code_hash(secret_key: str, phone: str, code: str) -> str:
    """The stored form of a code: keyed, so a leaked table cannot be brute-forced offline."""
    message = f"{phone}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def send_wait(phone: str, now: dt.datetime) -> int:
    """Seconds until `phone` may be sent another code (0: now), from its recent rows."""
    rows = (
        Otp.select(Otp.created_at)
        .where((Otp.phone == otp_key(phone)) & (Otp.created_at > now - WINDOW))
        .order_by(Otp.created_at.desc())
        .limit(PER_WINDOW)
        .tuples()
    )
    # peewee's hints type .tuples() rows as models; they are tuples.
    recent = [row[0] for row in cast(Iterable[tuple[dt.datetime]], rows)]
    wait = dt.timedelta(0)
    if recent:
        wait = max(wait, recent[0] + RESEND_AFTER - now)
    if len(recent) >= PER_WINDOW:
        wait = max(wait, recent[-1] + WINDOW - now)
    return math.ceil(wait.total_seconds()) if wait > dt.timedelta(0) else 0


def send_code(phone: str, secret_key: str, sender: Sender) -> Issued:
    """Store a new code for `phone` and send it; RateLimited (with the wait) over the limits.

    The code is sent after the commit, so it already works when it arrives.
    """
    now = clock()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    expires = now + LIFETIME
    with database.atomic():
        # Serialise sends for one phone: the count below and the insert act as one step.
        database.execute_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, phone))
        wait = send_wait(phone, now)
        if wait:
            raise RateLimited(f"too many codes for this number; try again in {wait} s", wait)
        # Rows older than the window no longer count for anything.
        key = otp_key(phone)
        Otp.delete().where((Otp.phone == key) & (Otp.created_at <= now - WINDOW)).execute()
        Otp.insert(
            phone=key,
            otp=code_hash(secret_key, phone, code),
            expires_at=expires,
            created_at=now,
            updated_at=now,
        ).execute()
    sender.send(phone, code)
    return Issued(code, expires)


def verify_code(phone: str, code: str, secret_key: str) -> Verification:
    """Check `code` against the newest code of `phone`; mark the phone verified on success.

    In one transaction: the code is marked used, `is_phone_verified` set on the active
    influencer and brand with that phone, and a session issued for that account (the
    influencer's when both exist: a brand can also log in with its password).
    BadRequest for a wrong, expired or used code; RateLimited once a code had more than
    MAX_WRONG wrong tries. A wrong try is counted (committed) before the error is raised.
    """
    now = clock()
    failure: CloutsyError | None = None
    result = Verification()
    with database.atomic():
        row = (
            Otp.select(Otp.id, Otp.otp, Otp.is_used, Otp.expires_at, Otp.attempts)
            .where(Otp.phone == otp_key(phone))
            .order_by(Otp.created_at.desc(), Otp.id.desc())
            .for_update()
            .first()
        )
        if row is None or row.is_used or row.expires_at <= now:
            failure = BadRequest(WRONG_CODE)
        elif row.attempts > MAX_WRONG:
            failure = _dead(phone, now)
        elif not hmac.compare_digest(row.otp, code_hash(secret_key, phone, code)):
            Otp.update(attempts=Otp.attempts + 1).where(Otp.id == row.id).execute()
            failure = _dead(phone, now) if row.attempts + 1 > MAX_WRONG else BadRequest(WRONG_CODE)
        else:
            Otp.update(is_used=True).where(Otp.id == row.id).execute()
            result = _verify_accounts(phone)
    if failure is not None:
        raise failure
    return result


def _dead(phone: str, now: dt.datetime) -> RateLimited:
    wait = max(1, send_wait(phone, now))
    return RateLimited(f"too many wrong codes; request a new code in {wait} s", wait)


def _verify_accounts(phone: str) -> Verification:
    found: dict[str, int] = {}
    for kind, model in (("influencer", Influencer), ("brand", Brand)):
        ids = (
            model.update(is_phone_verified=True)
            .where(holding(model, "phone", phone) & model.is_active)
            .returning(model.id)
            .tuples()
            .execute()
        )
        for (account_id,) in ids:
            found[kind] = account_id
    for kind in ("influencer", "brand"):
        if kind in found:
            token, _ = sessions.issue(kind, found[kind])
            return Verification(kind, found[kind], token)
    return Verification()
