"""Brand passwords: Argon2id hashes (argon2-cffi), never the password itself.

Argon2 costs ~64 MiB and a fraction of a core-second on purpose. A worker runs at most
as many at once as the machine has cores (`SLOTS`); a request that cannot get a slot
within `WAIT_S` gets 503 + Retry-After instead of queueing, so a login flood cannot pile
up behind the CPU. Callers hold no pooled connection meanwhile (services/sessions.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloutsy.errors import Unavailable

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters

SLOTS = os.cpu_count() or 1
WAIT_S = 1.0  # how long a request waits for a free slot before 503
_slots = threading.BoundedSemaphore(SLOTS)

# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-cost")


@contextmanager
def _slot() -> Iterator[None]:
    """One of this worker's hashing slots, or Unavailable after WAIT_S."""
    if not _slots.acquire(timeout=WAIT_S):
        raise Unavailable("too many password checks at once; try again shortly", retry_after=1)
    try:
        yield
    finally:
        _slots.release()


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`."""
    with _slot():
        return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown account (None) is checked against a dummy hash."""
    with _slot():
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with older parameters than the hasher's current ones."""
    return _hasher.check_needs_rehash(stored_hash)
