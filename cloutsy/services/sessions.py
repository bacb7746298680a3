"""Bearer-token sessions: random tokens stored only as SHA-256 hashes, valid 30 days."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from cloutsy.models import Session, utcnow

TOKEN_BYTES = 32
LIFETIME = dt.timedelta(days=30)


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
        token_hash=token_hash(token), subject_type=subject_type, subject_id=subject_id,
        expires_at=expires,
    )  # fmt: skip
    return token, expires


def authenticate(token: str) -> Caller | None:
    """The caller a live (unexpired, unrevoked) token stands for, or None."""
    digest = token_hash(token)
    row = (
        Session.select(Session.subject_type, Session.subject_id)
        .where(
            (Session.token_hash == digest)
            & Session.revoked_at.is_null()
            & (Session.expires_at > utcnow())
        )
        .tuples()
        .first()
    )
    if row is None:
        return None
    return Caller(row[0], row[1], digest)
