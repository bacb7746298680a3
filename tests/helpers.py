"""What several test modules share: the repo root, an HTTP client for live servers, sign-up
bodies, a thread harness and waiting on a condition.

Tests synchronise on the condition they mean (a lock really waited for, a row present,
`/health` answering), never on a sleep: a sleep is too short on a loaded machine and time
thrown away on an idle one. Test modules import from here, never from one another.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg2

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    """(status, headers, raw body) of one request; HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def influencer_body(
    n: int = 1, tag: str = "creator", phone_prefix: str = "98765", **extra: Any
) -> dict[str, Any]:
    """A valid influencer sign-up, unique per `n`; `tag` and `phone_prefix` keep one test
    module's accounts apart from another's (`Creator 1`, `creator1@example.com`, `9876500001`).
    """
    return {
        "name": f"{tag.capitalize()} {n}",
        "username": f"{tag}{n}",
        "email": f"{tag}{n}@example.com",
        "phone": f"{phone_prefix}{n:0{10 - len(phone_prefix)}d}",
        **extra,
    }


def brand_body(n: int = 1, **extra: Any) -> dict[str, Any]:
    """A valid brand sign-up, unique per `n`."""
    return {
        "email": f"brand{n}@example.com",
        "password": "correct horse battery",
        "phone": f"88765{n:05d}",
        "brandName": f"Brand {n}",
        "username": f"brand{n}",
        **extra,
    }


class Outbox:
    """An OTP sender that keeps what it was asked to send (an SMS bill, in production)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, code: str) -> None:
        self.sent.append((phone, code))


# --- waiting on a condition ------------------------------------------------------------------


def wait_until(condition: Callable[[], T], timeout: float = 10, what: str = "the condition") -> T:
    """Call `condition` until it returns a true value and return that value.

    Fails after `timeout` seconds with a message naming `what` was waited for and the last
    value seen, so a hang reads as "timed out waiting for X", not as a wrong result later.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last: {value!r})"
            )
        time.sleep(0.02)


def lock_waiters(dsn: str) -> int:
    """Sessions blocked on a heavyweight lock right now: ungranted requests in pg_locks.

    pg_locks, unlike pg_stat_activity's wait events, shows every role's sessions to any role.
    Asked on a fresh connection, outside any transaction of the test's.
    """
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
            return int(cur.fetchone()[0])


# --- threads ---------------------------------------------------------------------------------


class Background(Generic[T]):
    """One call running in a thread of its own; `result()` joins it and returns or re-raises.

    `started` and `finished` are monotonic times, for tests whose subject is a duration.
    """

    def __init__(self, call: Callable[[], T], barrier: threading.Barrier | None = None) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None
        self.started = self.finished = 0.0
        self._thread = threading.Thread(target=self._run, args=(call, barrier), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], T], barrier: threading.Barrier | None) -> None:
        try:
            if barrier is not None:
                barrier.wait(30)
            self.started = time.monotonic()
            self.value = call()
        except BaseException as exc:  # handed to the test thread by result()
            self.error = exc
        finally:
            self.finished = time.monotonic()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float = 30) -> Background[T]:
        """Wait for the call to end (an AssertionError if it is still running after `timeout`)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"a background call still runs after {timeout:g} s"
        return self

    def result(self, timeout: float = 30) -> T:
        """The call's return value, or its exception raised here."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def run_together(*calls: Callable[[], T], timeout: float = 30) -> list[Background[T]]:
    """Run every call in its own thread, released at the same instant, and wait for them all.

    Each outcome keeps its value or exception (`.value`, `.error`, `.result()`), in order.
    """
    barrier = threading.Barrier(len(calls))
    runs = [Background(call, barrier) for call in calls]
    for run in runs:
        run.join(timeout)
    return runs
