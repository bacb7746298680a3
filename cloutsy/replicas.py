"""Streaming read replicas: which server answers a public read (CONTRACT §10).

With DATABASE_REPLICA_URLS set, each process keeps one pool per replica and a monitor
thread that measures every replica's state and lag once a second. A request that may read
from a replica (a public read by a caller who did not write in the last
CLOUTSY_READ_YOUR_WRITES_S, decided by the request plugin) sends its statement to the next
usable replica; writes, private views and everything else use the primary. A replica that
is down, or more than CLOUTSY_REPLICA_MAX_LAG_S behind, is skipped; a statement that fails
on a replica is run again on the primary, so a replica dying mid-request is no error.

How lag is measured, so that an idle primary does not look like lag: the monitor samples
the primary's WAL position (`pg_current_wal_lsn()`) and remembers when it first saw each
position. A replica that has replayed (`pg_last_wal_replay_lsn()`) up to the primary's
current position has no lag, however long ago its last transaction was; one that has not
is as far behind as the time since the primary first reached a position the replica has
not replayed yet. Only a replica already behind when the monitor started falls back to
`now() - pg_last_xact_replay_timestamp()` (meaningful then, since it *is* behind).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg2.extensions
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from cloutsy.config import Settings
from cloutsy.db import PooledDatabase, database, make_pool

log = logging.getLogger(__name__)

T = TypeVar("T")
CHECK_INTERVAL_S = 1.0
HISTORY = 4096  # primary WAL positions remembered (one per change, at most one a check)

# Called after every check with (name, up, lag seconds or None): metrics install one.
observer: Callable[[str, bool, float | None], None] | None = None


def display_name(url: str) -> str:
    """`host:port/db` of a replica URL: no user, no password (it is shown in /health)."""
    params = psycopg2.extensions.parse_dsn(url)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"{host}:{port}/{params.get('dbname', '')}"


def _lsn(text: str | None) -> int | None:
    if text is None:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class Replica:
    """One replica: its pool and what the monitor last measured."""

    name: str
    pool: PooledDatabase
    up: bool = False
    lag_s: float | None = None
    reason: str | None = "not checked yet"
    checked_at: float = 0.0

    def usable(self, max_lag_s: float) -> bool:
        return self.up and self.lag_s is not None and self.lag_s <= max_lag_s

    def state(self, max_lag_s: float) -> str:
        if not self.up:
            return "down"
        return "ok" if self.usable(max_lag_s) else "lagging"


@dataclass
class ReplicaSet:
    """Every replica of this process, the monitor's memory of the primary, the routing."""

    primary: PooledDatabase
    replicas: list[Replica]
    max_lag_s: float
    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    started_at: float = field(default_factory=time.monotonic)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # --- measuring ---------------------------------------------------------------------

    def check(self) -> None:
        """Measure each replica once: reachable, in recovery, how far behind."""
        primary_lsn = self._primary_lsn()
        for replica in self.replicas:
            try:
                with replica.pool.connection_context():
                    row = replica.pool.execute_sql(
                        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                        "extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
                    ).fetchone()
            except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
                self._mark_down(replica, exc)
                continue
            in_recovery, replayed, since_replay = row
            replica.up, replica.reason = True, None
            if not in_recovery:  # promoted: it is a primary now, never behind itself
                replica.lag_s = 0.0
            elif primary_lsn is not None:
                replica.lag_s = self._lag(_lsn(replayed), primary_lsn, since_replay)
            replica.checked_at = time.monotonic()
            self._publish(replica)

    def _primary_lsn(self) -> int | None:
        try:
            with self.primary.connection_context():
                text = self.primary.execute_sql("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        except (OperationalError, InterfaceError, MaxConnectionsExceeded):
            return None  # lag cannot be measured now: keep the last figures
        lsn = _lsn(text)
        assert lsn is not None
        if not self.history or self.history[-1][1] != lsn:
            self.history.append((time.monotonic(), lsn))
        return lsn

    def _lag(self, replayed: int | None, primary_lsn: int, since_replay: Any) -> float:
        if replayed is not None and replayed >= primary_lsn:
            return 0.0
        now = time.monotonic()
        # The first moment the primary stood at a position this replica has not replayed.
        for index, (seen_at, lsn) in enumerate(self.history):
            if replayed is None or lsn > replayed:
                if index == 0 and since_replay is not None:
                    # Behind since before the monitor started: the replay time is all we have.
                    return max(now - seen_at, float(since_replay))
                return now - seen_at
        return 0.0

    def _mark_down(self, replica: Replica, exc: BaseException) -> None:
        if replica.up or replica.reason == "not checked yet":
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("replica %s is down: %s", replica.name, first)
        replica.up, replica.lag_s = False, None
        replica.reason = "unreachable"
        replica.checked_at = time.monotonic()
        if replica.pool.connection_is_dead():
            replica.pool.discard_connection()
        self._publish(replica)

    def _publish(self, replica: Replica) -> None:
        if observer is not None:
            observer(replica.name, replica.up, replica.lag_s)

    def start(self) -> None:
        """Check now, then once every CHECK_INTERVAL_S in a daemon thread."""
        self.check()

        def loop() -> None:
            while not self._stop.wait(CHECK_INTERVAL_S):
                try:
                    self.check()
                except Exception:  # the monitor must outlive any surprise
                    log.exception("replica check failed")

        self._thread = threading.Thread(target=loop, name="replica-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        for replica in self.replicas:
            replica.pool.close_all()

    # --- routing -----------------------------------------------------------------------

    def pick(self) -> Replica | None:
        """The next usable replica in turn, or None (then the primary answers)."""
        usable = [r for r in self.replicas if r.usable(self.max_lag_s)]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def report(self) -> list[dict[str, Any]]:
        """Each replica's state and lag, for /health."""
        return [
            {
                "name": r.name,
                "state": r.state(self.max_lag_s),
                "lagS": None if r.lag_s is None else round(r.lag_s, 3),
            }
            for r in self.replicas
        ]


current: ReplicaSet | None = None
_request = threading.local()
# Called with "primary" or "replica" for each public read: metrics install one.
read_observer: Callable[[str], None] | None = None


def configure(settings: Settings, primary: PooledDatabase) -> ReplicaSet | None:
    """One pool per DATABASE_REPLICA_URLS entry and the monitor (none without replicas)."""
    global current
    close()
    if not settings.replica_urls:
        return None
    replicas = []
    for url in settings.replica_urls:
        # pool_timeout 0: a busy replica is skipped, never waited for.
        pool = make_pool(settings.with_overrides(pool_timeout=0), url)
        pool.query_observer = primary.query_observer
        replicas.append(Replica(display_name(url), pool))
    current = ReplicaSet(primary, replicas, settings.replica_max_lag_s)
    current.start()
    return current


def close() -> None:
    global current
    if current is not None:
        current.close()
        current = None


@contextmanager
def public_reads(allowed: bool) -> Iterator[None]:
    """Within this block (one request), public reads may go to a replica if `allowed`."""
    _request.allowed = allowed
    try:
        yield
    finally:
        _request.allowed = False


def read(statement: Callable[[PooledDatabase], T]) -> T:
    """Run a public read: on a replica when this request may, else (or on failure) the primary.

    `statement` gets the database to run on and returns its result.
    """
    replicas = current
    if replicas is None or not getattr(_request, "allowed", False):
        return _on_primary(statement)
    replica = replicas.pick()
    if replica is None:
        return _on_primary(statement)
    try:
        with replica.pool.connected():
            result = statement(replica.pool)
    except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
        # Down or busy: skipped at once; the monitor decides when it is back.
        if isinstance(exc, MaxConnectionsExceeded):
            log.info("replica %s busy: this read goes to the primary", replica.name)
        else:
            replicas._mark_down(replica, exc)
        return _on_primary(statement)
    if read_observer is not None:
        read_observer("replica")
    return result


def _on_primary(statement: Callable[[PooledDatabase], T]) -> T:
    if read_observer is not None and current is not None:
        read_observer("primary")
    return statement(database)  # type: ignore[arg-type]  # the proxy stands for the pool
