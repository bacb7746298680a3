"""Idempotency keys: a retried POST gets the first answer again instead of a second write.

One row per (caller, route, key), kept 24 h, written in the SAME transaction as the write
it protects: `claim()` opens that transaction, the protected write nests inside it (a
savepoint), and the row's result is recorded before the commit. So a crash between the
write and the key cannot happen: either both are committed or neither is.

- Nothing in the row is PII: caller, route and key are folded into one keyed hash, the
  body into a keyed fingerprint, and `response` keeps only what renders the answer afresh
  (an account id, an expiry time), never the answer itself.
- A concurrent request with the same key finds the first one's transaction-level advisory
  lock taken and gets 409 at once (it never waits, never writes); once the first commits,
  retries replay it.
- A protected request that fails on purpose (an error of the tree: 400, 409, 429…) keeps
  the side effects it committed itself (e.g. a counted wrong OTP) and frees the key, so a
  corrected retry runs; an unexpected failure rolls everything back, the key included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from cloutsy.db import database
from cloutsy.errors import CloutsyError, Conflict, IdempotencyKeyReused
from cloutsy.models import IdempotencyKey, utcnow

LIFETIME = dt.timedelta(hours=24)
# First key of the two-key advisory lock: keeps these locks apart from the OTP ones.
LOCK_SPACE = 0x49646D  # "Idm"

clock: Callable[[], dt.datetime] = utcnow


@dataclass
class Claim:
    """A key being used: `stored` is the earlier result to replay, else record this one's."""

    stored: dict[str, Any] | None = None
    stored_status: int = 200
    status: int | None = None
    kept: dict[str, Any] = field(default_factory=dict)

    def record(self, status: int, kept: dict[str, Any]) -> None:
        """Remember this request's answer: its status and what renders it again."""
        self.status, self.kept = status, kept


def _hmac(secret: str, *parts: str | bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        mac.update(len(data).to_bytes(4, "big"))  # unambiguous boundaries between parts
        mac.update(data)
    return mac.hexdigest()


@contextmanager
def claim(secret: str, caller: str, route: str, key: str, body: bytes) -> Iterator[Claim]:
    """Use `key` for one request of `caller` on `route`, inside one transaction.

    Yields a Claim: with `stored` set, replay that answer (same key, same body, within
    24 h); otherwise run the write inside the block and `record()` its result. Raises
    IdempotencyKeyReused for the same key with another body, Conflict while another
    request with this key is running.
    """
    key_hash = _hmac(secret, "key", caller, route, key)
    fingerprint = _hmac(secret, "body", route, body)
    now = clock()
    failure: CloutsyError | None = None
    with database.atomic():
        lock = int.from_bytes(bytes.fromhex(key_hash[:8]), "big", signed=True)
        got = database.execute_sql(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_SPACE, lock)
        ).fetchone()[0]
        if not got:
            raise Conflict(
                "Idempotency-Key", "a request with this Idempotency-Key is still being processed"
            )
        row = (
            IdempotencyKey.select(
                IdempotencyKey.fingerprint,
                IdempotencyKey.status,
                IdempotencyKey.response,
                IdempotencyKey.expires_at,
            )
            .where(IdempotencyKey.key_hash == key_hash)
            .first()
        )
        if row is not None and row.expires_at > now and row.status is not None:
            if not hmac.compare_digest(row.fingerprint, fingerprint):
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request body"
                )
            stored = orjson.loads(row.response) if row.response else {}
            yield Claim(stored=stored, stored_status=row.status)
            return
        if row is not None:  # expired (or left without a result): the key starts afresh
            IdempotencyKey.delete().where(IdempotencyKey.key_hash == key_hash).execute()
        IdempotencyKey.insert(
            key_hash=key_hash,
            fingerprint=fingerprint,
            created_at=now,
            expires_at=now + LIFETIME,
        ).execute()
        current = Claim()
        try:
            yield current
        except CloutsyError as exc:
            # Refused on purpose: keep what the handler committed itself, free the key.
            failure = exc
            IdempotencyKey.delete().where(IdempotencyKey.key_hash == key_hash).execute()
        else:
            if current.status is None:
                IdempotencyKey.delete().where(IdempotencyKey.key_hash == key_hash).execute()
            else:
                IdempotencyKey.update(
                    status=current.status, response=orjson.dumps(current.kept).decode()
                ).where(IdempotencyKey.key_hash == key_hash).execute()
    if failure is not None:
        raise failure
