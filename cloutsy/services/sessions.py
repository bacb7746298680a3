"""Bearer-token sessions: random tokens stored only as SHA-256 hashes, valid 30 days.

A token dies on logout (`revoke`), when its account is deactivated (`revoke_all`), or
when it expires. Brand password login lives here too: it is the other way to get one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from cloutsy.db import database
from cloutsy.errors import Unauthorized
from cloutsy.kinds import KINDS
from cloutsy.models import Brand, Session, utcnow
from cloutsy.passwords import hash_password, needs_rehash, verify_password
from cloutsy.passwords import slot as password_slot
from cloutsy.services.limits import Limiter
from cloutsy.services.lookup import holding

TOKEN_BYTES = 32
LIFETIME = dt.timedelta(days=30)
# One message for an unknown email, a wrong password and a deactivated brand alike.
BAD_CREDENTIALS = "the email or the password is wrong"

# One round trip: the session must be live AND its account still active, so a token
# issued in a race with deactivation (or an account switched off by hand) is refused too.
_ACTIVE = "\n".join(
    f"         WHEN '{kind.name}' THEN EXISTS (\n"
    f"           SELECT 1 FROM {kind.table} a WHERE a.id = s.subject_id AND a.is_active)"
    for kind in KINDS.values()
)
_AUTHENTICATE = f"""
SELECT s.subject_type, s.subject_id
  FROM sessions s
 WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > %s
   AND CASE s.subject_type
{_ACTIVE}
       END
"""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: an account (`kind`, `id`) or the admin."""

    kind: str  # "influencer", "brand" or "admin"
    id: int | None = None
    token_hash: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def owns(self, kind: str, account_id: int) -> bool:
        return self.kind == kind and self.id == account_id


def token_hash(token: str) -> str:
    """The stored form of a token (a random 256-bit token needs no salt or slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(subject_type: str, subject_id: int) -> tuple[str, dt.datetime]:
    """A new token for an account and when it expires; only its hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = utcnow() + LIFETIME
    Session.create(
        token_hash=token_hash(token),
        subject_type=subject_type,
        subject_id=subject_id,
        expires_at=expires,
    )
    return token, expires


def issue_if_active(subject_type: str, subject_id: int) -> str | None:
    """A new token for an account that is still active, else None (a replayed OTP verify)."""
    model: Any = KINDS[subject_type].model
    if not model.select().where((model.id == subject_id) & model.is_active).exists():
        return None
    return issue(subject_type, subject_id)[0]


def authenticate(token: str) -> Caller | None:
    """The caller a live token of an active account stands for, or None."""
    digest = token_hash(token)
    row = database.execute_sql(_AUTHENTICATE, (digest, utcnow())).fetchone()
    if row is None:
        return None
    return Caller(row[0], row[1], digest)


def revoke(digest: str) -> None:
    """End one session (logout), by the hash of its token."""
    Session.update(revoked_at=utcnow()).where(
        (Session.token_hash == digest) & Session.revoked_at.is_null()
    ).execute()


def revoke_all(subject_type: str, subject_id: int) -> int:
    """End every live session of an account (deactivation); return how many."""
    return (
        Session.update(revoked_at=utcnow())
        .where(
            (Session.subject_type == subject_type)
            & (Session.subject_id == subject_id)
            & Session.revoked_at.is_null()
        )
        .execute()
    )


def brand_by_email(email: str) -> tuple[int, str, bool] | None:
    """(id, password hash, is_active) of the brand with this email (any case), or None.

    The one lookup of an account by email (issue 11 moves it onto email_digest).
    """
    row = (
        Brand.select(Brand.id, Brand.password, Brand.is_active)
        .where(holding(Brand, "email", email))  # the unique email_digest index
        .tuples()
        .first()
    )
    return (row[0], row[1], row[2]) if row else None


def login_brand(
    email: str, password: str, limiter: Limiter, client: str
) -> tuple[str, dt.datetime]:
    """A token for the brand with this email and password; Unauthorized otherwise.

    Failed attempts count against `login_email` and `login_address`; over either, 429
    before any password is checked. An unknown email is checked against a dummy hash and
    a deactivated brand's password is still verified, so every failure costs one Argon2
    verification, like a success: the answer and its timing do not tell whether the email
    has an account. No pooled connection is held while Argon2 runs (the route is
    registered with db=False): a login flood cannot starve the pool.
    """
    email = email.lower()
    with password_slot():  # first: under a flood, a refusal (503) costs no database work
        with database.connected():
            limiter.check("login_email", email)
            limiter.check("login_address", client)
            row = brand_by_email(email)
        stored = row[1] if row else None
        matched = verify_password(stored, password)
    if not matched or row is None or not row[2]:
        with database.connected(), database.atomic():
            limiter.record("login_email", email)
            limiter.record("login_address", client)
        raise Unauthorized(BAD_CREDENTIALS)
    brand_id = row[0]
    # Re-hashed with today's parameters (outside the transaction: Argon2 is slow on purpose).
    fresh = hash_password(password) if stored is not None and needs_rehash(stored) else None
    with database.connected(), database.atomic():
        if fresh is not None:
            Brand.update(password=fresh).where(Brand.id == brand_id).execute()
        return issue("brand", brand_id)
