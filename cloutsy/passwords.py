"""Brand passwords: Argon2id hashes (argon2-cffi), never the password itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters

# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-cost")


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown account (None) is checked against a dummy hash."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with older parameters than the hasher's current ones."""
    return _hasher.check_needs_rehash(stored_hash)
