"""Every abuse limit (CONTRACT §6 "Abuse limits"), counted in PostgreSQL by one mechanism.

A limit `name=N/PERIOD` (CLOUTSY_RATE_LIMITS) allows at most N events per key in any
sliding PERIOD. Each counted event is a row of `rate_limit_hits` (name, HMAC of the
key, time), so the limits hold across workers, hosts and restarts. The wait a 429 quotes
is exact: the time until the oldest of the last N events leaves the window.

Two ways to count, one mechanism:

- `take(name, key)`: every attempt counts. Check and insert run under a transaction-level
  advisory lock on (name, key), so concurrent attempts cannot both pass the last slot.
- `check(name, key)` before the work and `record(name, key)` after a failure: only
  failures count (brand logins, OTP verifications). Concurrent failures may overshoot by
  the number in flight; each one still pays its full cost (Argon2, a wrong code).

Why not a library: `limits` (the well-kept Python one) stores in memory, Redis,
Memcached, MongoDB or etcd, not PostgreSQL, and the service keeps all state there (§10).
Times come from `clock` (tests replace it: now() is frozen inside a test transaction).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
from collections.abc import Callable, Mapping

from cloutsy.config import RateLimit
from cloutsy.db import database
from cloutsy.errors import RateLimited
from cloutsy.models import RateLimitHit, utcnow

# First key of the two-key advisory lock: keeps these locks apart from any other user's.
LOCK_SPACE = 0x4C696D  # "Lim"

clock: Callable[[], dt.datetime] = utcnow
MEMO_SIZE = 10_000  # full keys remembered per process

_NTH_NEWEST = """
SELECT at FROM rate_limit_hits
 WHERE name = %s AND key_hash = %s AND at > %s
 ORDER BY at DESC OFFSET %s LIMIT 1
"""

MESSAGES = {
    "login_email": "too many failed logins for this email",
    "login_address": "too many failed logins from this address",
    "otp_send_phone": "too many codes for this number",
    "otp_send_phone_hourly": "too many codes for this number",
    "otp_send_address": "too many codes requested from this address",
    "otp_send_total": "the service is sending too many codes right now",
    "otp_verify_address": "too many wrong codes from this address",
    "signup_address": "too many sign-ups from this address",
}


class Limiter:
    """The configured limits, keyed with the service's secret (no raw key is stored)."""

    def __init__(self, rules: Mapping[str, RateLimit | None], secret_key: str) -> None:
        self.rules = dict(rules)
        self._secret = secret_key.encode()
        # (name, key hash) -> until when PostgreSQL said it is full. A full key stays full
        # at least that long (new events only push it further), so this process may refuse
        # it again without a round trip: a flood from one key costs no database work.
        self._full: dict[tuple[str, str], dt.datetime] = {}

    def forget(self) -> None:
        """Drop what this process remembers of full keys (tests that roll rows back)."""
        self._full.clear()

    def _rule(self, name: str) -> RateLimit | None:
        if name not in self.rules:
            raise KeyError(f"no such limit: {name}")  # a typo in the code, not user input
        return self.rules[name]

    def key_hash(self, name: str, key: str) -> str:
        return hmac.new(self._secret, f"{name}:{key}".encode(), hashlib.sha256).hexdigest()

    def wait(self, name: str, key: str, now: dt.datetime | None = None) -> int:
        """Seconds until one more event of `name` for `key` is allowed (0: now, or off)."""
        rule = self._rule(name)
        if rule is None:
            return 0
        now = now or clock()
        period = dt.timedelta(seconds=rule.seconds)
        row = database.execute_sql(
            _NTH_NEWEST, (name, self.key_hash(name, key), now - period, rule.count - 1)
        ).fetchone()
        if row is None:
            return 0
        return max(1, math.ceil((row[0] + period - now).total_seconds()))

    def check(self, name: str, key: str, now: dt.datetime | None = None) -> None:
        """RateLimited (naming the limit, with the wait) if `key` has no slot left."""
        if self._rule(name) is None:
            return
        now = now or clock()
        memo = (name, self.key_hash(name, key))
        until = self._full.get(memo)
        if until is not None and until > now:
            wait = max(1, math.ceil((until - now).total_seconds()))
        else:
            wait = self.wait(name, key, now)
            if wait:
                if len(self._full) >= MEMO_SIZE:
                    self._full.clear()  # crude but bounded; PostgreSQL stays the truth
                self._full[memo] = now + dt.timedelta(seconds=wait)
        if wait:
            raise RateLimited(f"{MESSAGES[name]}; try again in {wait} s", wait, limit=name)

    def record(self, name: str, key: str, now: dt.datetime | None = None) -> None:
        """Count one event of `name` for `key` (a no-op when the limit is off)."""
        rule = self._rule(name)
        if rule is None:
            return
        now = now or clock()
        RateLimitHit.insert(
            name=name,
            key_hash=self.key_hash(name, key),
            at=now,
            expires_at=now + dt.timedelta(seconds=rule.seconds),
        ).execute()

    def take(self, name: str, key: str, now: dt.datetime | None = None) -> None:
        """Check and count one attempt atomically; RateLimited when no slot is left.

        Inside the caller's transaction when there is one (a refused attempt then leaves
        nothing behind), else in its own.
        """
        if self._rule(name) is None:
            return
        now = now or clock()
        with database.atomic():
            database.execute_sql(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (LOCK_SPACE, self.key_hash(name, key)),
            )
            self.check(name, key, now)
            self.record(name, key, now)
