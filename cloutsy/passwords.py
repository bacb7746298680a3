"""Brand passwords: Argon2id hashes (argon2-cffi), never the password itself.

Argon2 costs ~64 MiB and a fraction of a core-second on purpose. A worker runs at most
as many at once as the machine has cores (`SLOTS`); a few more requests wait up to
`WAIT_S` for a slot, and the rest get 503 + Retry-After at once instead of queueing, so a
login flood cannot pile up behind the CPU nor hold the server's request threads.
Callers hold no pooled connection meanwhile (services/sessions.py).

The hashes run on a few threads of their own at a lower CPU priority (nice +10; on Linux
a thread's nice value is its own): a flood of logins then uses the cores only when the
rest of the service does not need them, so reads keep their throughput.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloutsy.errors import Unavailable

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters

SLOTS = os.cpu_count() or 1
WAIT_S = 0.5  # how long a request waits for a free slot before 503
HASH_NICE = 10  # CPU priority of the hashing threads (0 = the request threads')
_slots = threading.BoundedSemaphore(SLOTS)
# At most SLOTS more requests wait for a slot; any beyond get 503 at once. The server has
# few request threads (2 x pool): a flood must not park them all in a wait, or every
# other request would queue behind it.
_waiting = threading.BoundedSemaphore(SLOTS)
T = TypeVar("T")


def _lower_priority() -> None:
    # Not Linux, or not allowed: the hashing threads run at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


# Threads start on first use, so each server worker process gets its own after the fork.
_threads = ThreadPoolExecutor(SLOTS, thread_name_prefix="argon2", initializer=_lower_priority)

# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-cost")


BUSY = "too many password checks at once; try again shortly"


_held = threading.local()  # how many slots this thread holds (slot() nests)


@contextmanager
def slot() -> Iterator[None]:
    """One of this worker's hashing slots: at once, or after a wait of at most WAIT_S when
    few others wait; else Unavailable (503 + Retry-After).

    A login takes its slot before any database work, so a refused one costs almost
    nothing; hashing inside it (nested) reuses the slot.
    """
    if getattr(_held, "count", 0):
        _held.count += 1
        try:
            yield
        finally:
            _held.count -= 1
        return
    if not _slots.acquire(blocking=False):
        if not _waiting.acquire(blocking=False):
            raise Unavailable(BUSY, retry_after=1)
        try:
            if not _slots.acquire(timeout=WAIT_S):
                raise Unavailable(BUSY, retry_after=1)
        finally:
            _waiting.release()
    _held.count = 1
    try:
        yield
    finally:
        _held.count = 0
        _slots.release()


def _hashing(work: Callable[[], T]) -> T:
    """Run `work` on a low-priority hashing thread, within a slot."""
    with slot():
        return _threads.submit(work).result()


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`."""
    return _hashing(lambda: _hasher.hash(password))


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown account (None) is checked against a dummy hash."""
    return _hashing(lambda: _verify(stored_hash, password))


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with older parameters than the hasher's current ones."""
    return _hasher.check_needs_rehash(stored_hash)
