"""The one database object, its pool, and how to reach the configured server.

`database` is a peewee `DatabaseProxy`: models bind to it at import time and
`init_database(settings)` points it at a pooled connection once per process.
Connections are taken and given back explicitly (`autoconnect=False`): per
request in the web layer, `connection_context()` in tasks and notebooks.
"""

from __future__ import annotations

import functools
import logging
import queue
import re
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote, urlparse

import psycopg2.extensions
from peewee import (  # type: ignore[attr-defined]
    Database,
    DatabaseProxy,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    __exception_wrapper__,
)
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase
from playhouse.shortcuts import ReconnectMixin
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from cloutsy import embedded, roles
from cloutsy.config import ConfigError, Settings
from cloutsy.errors import Unavailable

log = logging.getLogger(__name__)

database = DatabaseProxy()

# Errors that mean "this connection is dead", as psycopg2 words them.
DISCONNECT_ERRORS = (
    (OperationalError, "server closed the connection"),
    (OperationalError, "terminating connection"),
    (OperationalError, "connection not open"),
    (OperationalError, "could not receive data"),
    (OperationalError, "ssl connection has been closed"),
    (InterfaceError, "connection already closed"),
    (InterfaceError, "cursor already closed"),
)


class Connection(psycopg2.extensions.connection):
    """A psycopg2 connection that remembers which statements it has prepared."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()


class PooledDatabase(ReconnectMixin, PooledPostgresqlDatabase):
    """A pool that survives a server restart.

    peewee's pool probes idle connections at checkout, but a connection that was
    checked out while the server restarted fails on its next query. Outside a
    transaction `ReconnectMixin` drops it and retries once on a fresh connection
    (inside one it rightly refuses: the request fails and `release()` discards it).
    """

    reconnect_errors = DISCONNECT_ERRORS
    # Called with each statement, its parameters and its duration in seconds: the one hook
    # that counts queries (/metrics installs one; `QueryCounter` chains in for a block).
    query_observer: Callable[[str, Any, float], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One token per connection the pool may hand out. A thread that finds none waits
        # on this C-level queue (the GIL released) instead of peewee's loop of failed
        # checkouts and Condition wake-ups: measured under wrk with twice as many threads
        # as connections, that loop cost ~250 us of CPU a request (issue 14).
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(self._max_connections or 0):
            self._slots.put(None)

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Take a slot (waiting at most the pool timeout), then a pooled connection."""
        if not self._max_connections or not self.is_closed():
            return bool(super().connect(reuse_if_open))
        try:
            self._slots.get_nowait()
        except queue.Empty:
            if not self._wait_timeout:  # POSTGRES_POOL_TIMEOUT=0: do not wait
                raise MaxConnectionsExceeded("Exceeded maximum connections.") from None
            try:
                self._slots.get(timeout=min(self._wait_timeout, threading.TIMEOUT_MAX))
            except queue.Empty:
                raise MaxConnectionsExceeded(
                    "Max connections exceeded, timed out attempting to connect."
                ) from None
        try:
            # peewee's own waiting loop is skipped: the slot guarantees a free connection.
            opened = Database.connect(self, reuse_if_open)
        except BaseException:
            self._slots.put(None)
            raise
        self._state.holds_slot = True
        return bool(opened)

    def close(self) -> bool:
        """Give the connection back to the pool and the slot back to the waiters."""
        try:
            return bool(super().close())
        finally:
            if self._state.closed and getattr(self._state, "holds_slot", False):
                self._state.holds_slot = False
                self._slots.put(None)

    def execute_sql(self, sql, params=None):  # type: ignore[no-untyped-def]
        observer = self.query_observer
        if observer is None:
            return super().execute_sql(sql, params)
        started = time.perf_counter()
        try:
            return super().execute_sql(sql, params)
        finally:
            observer(sql, params, time.perf_counter() - started)

    # False behind PgBouncer in transaction mode (POSTGRES_PREPARED_STATEMENTS=false).
    use_prepared: bool = True

    def execute_prepared(self, name: str, sql: str, params: Sequence[Any]) -> Any:
        """Run `sql` (with $1..$n placeholders) as a server-side prepared statement.

        PostgreSQL then parses and plans the hot read queries once per connection
        instead of once per request (measured: 160 us instead of 410 us a detail read).
        Without prepared statements (PgBouncer in transaction mode hands each transaction
        a different server connection, where a `PREPARE`d name does not exist) the same
        text is sent with bound parameters: no session state.
        """
        if not self.use_prepared:
            return self.execute_sql(plain_sql(sql), {f"p{i}": v for i, v in enumerate(params, 1)})
        execute = _execute_sql(name, len(params))
        for attempt in (1, 2):
            conn = self.connection()
            if name not in conn.prepared:
                self.execute_sql(f"PREPARE {name} AS {sql}")
                conn.prepared.add(name)
            try:
                return self._execute_direct(conn, execute, params)
            except ProgrammingError as exc:
                # A reconnect (server restart) gave us a connection without the statement.
                if attempt == 2 or "does not exist" not in str(exc):
                    raise
                self.connection().prepared.discard(name)
        raise AssertionError("unreachable")

    def _execute_direct(self, conn: Connection, sql: str, params: Sequence[Any]) -> Any:
        """`sql` on `conn` without peewee's per-statement layers (the hot reads, issue 14).

        Errors are translated as peewee does; a lost connection outside a transaction
        goes through `execute_sql`, whose ReconnectMixin reconnects and runs it again.
        """
        started = time.perf_counter()
        try:
            with __exception_wrapper__:
                cursor = conn.cursor()
                cursor.execute(sql, params)
        except (OperationalError, InterfaceError) as exc:
            if not self.in_transaction() and self._lost(exc):
                return self.execute_sql(sql, params)  # observed there, once
            self._observe(sql, params, started)
            raise
        self._observe(sql, params, started)
        return cursor

    def _observe(self, sql: str, params: Any, started: float) -> None:
        observer = self.query_observer
        if observer is not None:
            observer(sql, params, time.perf_counter() - started)

    def _lost(self, exc: Exception) -> bool:
        """True when `exc` says the connection is gone (ReconnectMixin's own test)."""
        text = str(exc).lower()
        return any(f in text for f in self._reconnect_errors.get(type(exc), ()))

    def _is_closed(self, conn: Any) -> bool:
        """Check a pooled connection at checkout without a round trip when it is healthy.

        peewee's check sends `SELECT 1` on every checkout: a second round trip per request.
        An idle connection has nothing to read, so a readable socket means the server
        sent something (a termination notice, or EOF after a restart): only then probe.
        """
        if conn.closed:
            return True
        try:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            ready = poller.poll(0)
        except (OSError, ValueError):
            return True
        if ready or conn.info.transaction_status != TRANSACTION_STATUS_IDLE:
            return bool(super()._is_closed(conn))
        return False

    def pool_stats(self) -> dict[str, int]:
        """Pool figures for /health and /metrics: max, in use, idle (this process)."""
        with self._pool_lock:
            return {
                "max": int(self._max_connections or 0),
                "inUse": len(self._in_use),
                "idle": len(self._connections),
            }

    @contextmanager
    def connected(self) -> Iterator[None]:
        """Use this thread's open connection, or take one from the pool and give it back after.

        Unlike `connection_context()`, this nests: inside a request or a test transaction
        it reuses the connection already held and leaves it open.
        """
        opened = self.is_closed()
        if opened:
            self.connect()
        try:
            yield
        finally:
            if opened:
                self.close()

    def connection_is_dead(self) -> bool:
        """True when this thread's connection was lost (not merely a failed statement)."""
        if self.is_closed():
            return False
        raw = self._state.conn
        return raw is None or bool(raw.closed)

    def discard_connection(self) -> None:
        """Close this thread's connection without returning it to the pool."""
        if not self.is_closed():
            try:
                self.manual_close()
            except Exception:  # the socket is already gone; nothing to give back
                log.debug("discarding a dead connection failed", exc_info=True)
                self._state.reset()


_PLACEHOLDER = re.compile(r"\$(\d+)")


@functools.cache
def _execute_sql(name: str, count: int) -> str:
    """`EXECUTE name(%s, …)` for a statement with `count` parameters."""
    return "EXECUTE " + name + (f"({', '.join(['%s'] * count)})" if count else "")


@functools.cache
def plain_sql(sql: str) -> str:
    """`sql` with $n placeholders as psycopg2's `%(pn)s` (a literal % doubled)."""
    return _PLACEHOLDER.sub(r"%(p\1)s", sql.replace("%", "%%"))


Purpose = Literal["app", "migrate", "analytics", "admin"]
# Who connects for what on the embedded server (trust on its socket: no passwords).
EMBEDDED_USERS: dict[str, str] = {
    "app": roles.APP,
    "migrate": roles.MIGRATOR,
    "analytics": roles.ANALYST,
    "admin": "postgres",
}
_roles_ready: set[tuple[str, str]] = set()


def with_user(url: str, user: str) -> str:
    """`url` logging in as `user` (no password: the embedded server trusts its socket)."""
    parsed = urlparse(url)
    host = parsed.netloc.rpartition("@")[2]
    return parsed._replace(netloc=f"{quote(user, safe='')}@{host}").geturl()


def connection_url(settings: Settings, purpose: Purpose = "app") -> str:
    """The URL to connect to for `purpose` (CONTRACT §3, §9).

    Configured server: the app uses DATABASE_URL; migrations MIGRATION_DATABASE_URL and the
    notebooks ANALYTICS_DATABASE_URL, each falling back to DATABASE_URL. Embedded server
    (started if needed): the least-privilege roles, created on first use in each process
    (`cloutsy.roles`), so a fresh clone serves as cloutsy_app with nothing configured.
    """
    external = settings.external_url()
    if external:
        chosen = {
            "migrate": settings.migration_database_url,
            "admin": settings.migration_database_url,
            "analytics": settings.analytics_url(),
        }.get(purpose)
        return chosen or external
    pgdata = settings.data_dir / "pgdata"
    admin_uri = embedded.server_uri(pgdata, "postgres")
    embedded.ensure_database(admin_uri, settings.postgres_db)
    url = embedded.server_uri(pgdata, settings.postgres_db)
    if (str(pgdata), settings.postgres_db) not in _roles_ready:
        roles.ensure_on(url, settings.postgres_db, settings, ())
        _roles_ready.add((str(pgdata), settings.postgres_db))
    return with_user(url, EMBEDDED_USERS[purpose])


def connect_params(url: str, settings: Settings) -> dict[str, Any]:
    """psycopg2 keyword arguments for `url`, with the connect and statement timeouts.

    The URL is read by libpq's own parser, so its forms all work: several hosts
    (`postgresql://a:5432,b:5432/db?target_session_attrs=read-write`, CONTRACT §10),
    a unix socket (`?host=/dir`). With prepared statements off (PgBouncer in transaction
    mode) no startup `options` are sent: PgBouncer refuses them; the statement timeout
    and time zone are then settings of the role (`ALTER ROLE … SET`).
    """
    try:
        from_url = dict(psycopg2.extensions.parse_dsn(url))
    except psycopg2.ProgrammingError:
        raise ConfigError("a database URL is not valid") from None
    params: dict[str, Any] = {
        "database": from_url.pop("dbname", None) or "postgres",
        "connect_timeout": settings.connect_timeout_s,
        "application_name": "cloutsy",
        "connection_factory": Connection,
    }
    if settings.prepared_statements:
        params["options"] = f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
    params.update(from_url)  # what the URL sets itself wins over the defaults above
    return params


def init_database(
    settings: Settings, url: str | None = None, purpose: Purpose = "app"
) -> PooledDatabase:
    """Point the `database` proxy at a new pool for `settings` (as `purpose`) and return it."""
    if database.obj is not None:
        close_database()
    db = make_pool(settings, url or connection_url(settings, purpose))
    database.initialize(db)
    from cloutsy import replicas  # replicas builds on this module

    replicas.configure(settings, db)
    return db


def make_pool(settings: Settings, url: str) -> PooledDatabase:
    """A pool on `url` with the settings' size and timeouts (not bound to the proxy)."""
    params = connect_params(url, settings)
    pool = PooledDatabase(
        params.pop("database"),
        max_connections=settings.pool_max,
        stale_timeout=settings.pool_stale,
        # peewee reads timeout=0 as "wait forever"; the contract's 0 means "do not wait".
        timeout=settings.pool_timeout if settings.pool_timeout > 0 else None,
        autoconnect=False,
        autorollback=False,
        **params,
    )
    pool.use_prepared = settings.prepared_statements
    return pool


def close_database() -> None:
    """Close every pooled connection, the replicas' too (shutdown, tests)."""
    from cloutsy import replicas

    replicas.close()
    db = database.obj
    if db is not None:
        db.close_all()


def current() -> PooledDatabase:
    """The initialised pool behind the proxy."""
    if database.obj is None:
        raise RuntimeError("init_database(settings) has not been called")
    return database.obj  # type: ignore[no-any-return]


class QueryCounter:
    """Records the statements a pool runs inside `with`: `(sql, params)` in order, and `count`.

    The one query counter, for tests, the notebooks' timings and EXPLAIN: it chains in front
    of the pool's `query_observer` for the block, so /metrics keeps counting meanwhile.
    With `this_thread`, statements other threads send through the pool are left out.
    """

    def __init__(self, pool: PooledDatabase | None = None, this_thread: bool = False) -> None:
        self.pool = pool
        self.this_thread = this_thread
        self.statements: list[tuple[str, Any]] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def __enter__(self) -> QueryCounter:
        pool = self.pool or current()
        self.statements = seen = []
        previous = self._previous = pool.query_observer
        thread = threading.get_ident() if self.this_thread else None

        def observe(sql: str, params: Any, seconds: float) -> None:
            if thread is None or threading.get_ident() == thread:
                seen.append((sql, params))
            if previous is not None:
                previous(sql, params, seconds)

        pool.query_observer = observe
        self._pool = pool
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.query_observer = self._previous


def role_warnings(db: PooledDatabase) -> list[str]:
    """What is missing on the role when no startup options carry the settings (PgBouncer).

    With POSTGRES_PREPARED_STATEMENTS=false the statement timeout and time zone are not sent
    at connect: they must be settings of the role, or runaway queries are never cut.
    """
    if db.use_prepared:
        return []
    with db.connection_context():
        timeout, zone = db.execute_sql(
            "SELECT current_setting('statement_timeout'), current_setting('TimeZone')"
        ).fetchone()
    found = []
    if timeout == "0":
        found.append(
            "the database role has no statement_timeout (POSTGRES_PREPARED_STATEMENTS=false "
            "sends none): ALTER ROLE <app role> SET statement_timeout = '5s'"
        )
    if zone not in ("UTC", "Etc/UTC"):
        found.append(
            f"the database role's time zone is {zone}: ALTER ROLE <app role> SET timezone = 'UTC'"
        )
    return found


def describe(db: PooledDatabase) -> str:
    """`database NAME on HOST:PORT` (or on the socket directory) for messages; no credentials."""
    params = db.connect_params
    host = params.get("host") or "localhost"
    where = host if str(host).startswith("/") else f"{host}:{params.get('port') or 5432}"
    return f"database {db.database} on {where}"


def wait_for_database(timeout: float = 30.0) -> None:
    """Retry a first connection with backoff for up to `timeout` s, else raise Unavailable.

    The first failure is logged once, naming the host and database; the retries are quiet.
    """
    db = current()
    deadline = time.monotonic() + timeout
    delay = 0.2
    told = False
    while True:
        try:
            with db.connection_context():
                db.execute_sql("SELECT 1")
            for warning in role_warnings(db):
                log.warning("%s", warning)
            return
        except (OperationalError, InterfaceError, MaxConnectionsExceeded) as exc:
            if time.monotonic() + delay > deadline:
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise Unavailable(
                    f"{describe(db)} not reachable after {timeout:.0f} s: {reason}"
                ) from exc
            if not told:
                log.info("%s not ready; retrying for up to %.0f s", describe(db), timeout)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
