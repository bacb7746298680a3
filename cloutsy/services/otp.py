"""Phone verification by one-time codes: each proves a phone for one account, at most once.

A code is 6 random digits (`secrets`), stored only as HMAC-SHA256 keyed with
CLOUTSY_SECRET_KEY over phone and code, valid 5 minutes, used once, and dead after
more than 5 wrong tries. Only the newest code of a phone counts: a new send
supersedes the old one.

A code is for the one account chosen at send (`accountType`, CONTRACT §6: see
`accounts.code_target`); verifying it marks that account's phone proved (or applies its
pending phone change) and returns a token for it alone.

Sends count against `otp_send_phone`, `otp_send_phone_hourly`, `otp_send_address` and
`otp_send_total`; failed verifications against `otp_verify_address` (services/limits.py,
in PostgreSQL, so they hold across workers and restarts).

Times come from `clock`, never SQL now(): tests replace it, and now() is frozen inside
the transaction a test runs in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cloutsy.db import database
from cloutsy.errors import BadRequest, CloutsyError, RateLimited
from cloutsy.logs import mask_phone
from cloutsy.models import Otp, utcnow
from cloutsy.services import accounts, sessions
from cloutsy.services.limits import Limiter
from cloutsy.services.lookup import otp_key

log = logging.getLogger(__name__)

CODE_DIGITS = 6
LIFETIME = dt.timedelta(minutes=5)
MAX_WRONG = 5  # wrong tries a code survives; the next wrong one kills it (429)
# Older rows of a phone no longer matter for anything: dropped at its next send.
KEEP = dt.timedelta(hours=1)
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


def send_code(
    phone: str,
    secret_key: str,
    sender: Sender,
    limiter: Limiter,
    client: str,
    account_type: str | None = None,
) -> Issued:
    """Store a new code for `phone` and send it; RateLimited (with the wait) over a limit.

    The per-phone limits come first (their wait is the one a user can act on), then the
    client's and the global budget; a refused send counts for none of them. The code is
    sent after the commit, so it already works when it arrives.
    """
    now = clock()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    expires = now + LIFETIME
    with database.atomic():
        limiter.take("otp_send_phone", phone, now)
        limiter.take("otp_send_phone_hourly", phone, now)
        limiter.take("otp_send_address", client, now)
        limiter.take("otp_send_total", "*", now)
        target = accounts.code_target(phone, account_type)
        key = otp_key(phone)  # otps.phone holds the number's blind index (§9)
        Otp.delete().where((Otp.phone == key) & (Otp.created_at <= now - KEEP)).execute()
        Otp.insert(
            phone=key,
            otp=code_hash(secret_key, phone, code),
            expires_at=expires,
            account_type=target[0] if target else account_type,
            account_id=target[1] if target else None,
            created_at=now,
            updated_at=now,
        ).execute()
    sender.send(phone, code)
    return Issued(code, expires)


def verify_code(
    phone: str, code: str, secret_key: str, limiter: Limiter, client: str
) -> Verification:
    """Check `code` against the newest code of `phone`; prove the phone for its one account.

    In one transaction: the code is marked used, the account it was sent for (or, if it
    had none then, the one `code_target` finds now) has the phone proved, and a session
    is issued for that account only. BadRequest for a wrong, expired or used code;
    RateLimited once a code had more than MAX_WRONG wrong tries or the client address
    has too many failures. A failure is counted (committed) before the error is raised.
    """
    now = clock()
    failure: CloutsyError | None = None
    result = Verification()
    limiter.check("otp_verify_address", client, now)
    with database.atomic():
        row = (
            Otp.select(
                Otp.id, Otp.otp, Otp.is_used, Otp.expires_at, Otp.attempts, Otp.account_type,
                Otp.account_id,
            )
            .where(Otp.phone == otp_key(phone))
            .order_by(Otp.created_at.desc(), Otp.id.desc())
            .for_update()
            .first()
        )  # fmt: skip
        if row is None or row.is_used or row.expires_at <= now:
            failure = BadRequest(WRONG_CODE)
        elif row.attempts > MAX_WRONG:
            failure = _dead(limiter, phone, now)
        elif not hmac.compare_digest(row.otp, code_hash(secret_key, phone, code)):
            Otp.update(attempts=Otp.attempts + 1).where(Otp.id == row.id).execute()
            dead = row.attempts + 1 > MAX_WRONG
            failure = _dead(limiter, phone, now) if dead else BadRequest(WRONG_CODE)
        else:
            Otp.update(is_used=True).where(Otp.id == row.id).execute()
            result = _prove(phone, row.account_type, row.account_id)
        if failure is not None:
            limiter.record("otp_verify_address", client, now)
    if failure is not None:
        raise failure
    return result


def _dead(limiter: Limiter, phone: str, now: dt.datetime) -> RateLimited:
    """The 429 of a code killed by wrong tries: wait until a new code may be sent."""
    wait = max(
        1,
        limiter.wait("otp_send_phone", phone, now),
        limiter.wait("otp_send_phone_hourly", phone, now),
    )
    message = f"too many wrong codes; request a new code in {wait} s"
    return RateLimited(message, wait, limit="otp_code_attempts")


def _prove(phone: str, account_type: str | None, account_id: int | None) -> Verification:
    target = (account_type, account_id) if account_type and account_id else None
    if target is None:
        target = accounts.code_target(phone, account_type)
    if target is None or not accounts.prove_phone(target[0], target[1], phone):
        return Verification()
    kind, owner = target
    token, _ = sessions.issue(kind, owner)
    return Verification(kind, owner, token)
