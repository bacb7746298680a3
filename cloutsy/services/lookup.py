"""Finding an account by email or phone: through the blind indexes, in one indexed step.

Emails and phones are stored encrypted (a fresh nonce each time), so SQL can neither
compare nor index them; `email_digest` / `phone_digest` (HMAC of the normalised value,
unique indexes) stand in for them. Every "account holding this email / phone" in the
services is `holding()`, and every write of an email or phone goes through
`with_digests()`: one place to change when the rules move (issue 12).
"""

from __future__ import annotations

from typing import Any

from peewee import Expression

from cloutsy import crypto
from cloutsy.models import DIGEST_COLUMNS

digest_of = crypto.digest_of


def holding(model: Any, column: str, value: str) -> Expression:
    """WHERE clause: the account of `model` whose `column` ("email"/"phone") is `value`."""
    field = getattr(model, DIGEST_COLUMNS[column])
    return field == digest_of(column, value)  # type: ignore[no-any-return]


def with_digests(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (column -> value) plus the digest of each email / phone it sets."""
    out = dict(values)
    for column, digest_column in DIGEST_COLUMNS.items():
        if column in values:
            out[digest_column] = digest_of(column, values[column])
    return out


def otp_key(phone: str) -> str:
    """What `otps.phone` holds for a number: its blind index, never the number (§9)."""
    key = digest_of("phone", phone)
    assert key is not None
    return key
