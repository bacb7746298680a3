"""Fixtures: a real PostgreSQL (embedded by default, DATABASE_URL's when set), clean per test.

The session applies every migration to a database of its own: on the embedded
server `cloutsy_test`; with DATABASE_URL/POSTGRES_HOST, the database named there
(which the suite wipes: give it a throwaway one). Each test runs inside an outer
transaction rolled back afterwards (~4 ms); tests that must commit (races,
restarts, real HTTP) use `committed`, which truncates after them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("CLOUTSY_SECRET_KEY", "test-secret-key-0123456789abcdef")
if not os.environ.get("DATABASE_URL") and not os.environ.get("POSTGRES_HOST"):
    # CLOUTSY_TEST_DB lets two suites run side by side on one embedded server.
    os.environ["POSTGRES_DB"] = os.environ.get("CLOUTSY_TEST_DB", "cloutsy_test")

from cloutsy import catalogue, embedded, migrations  # noqa: E402
from cloutsy.config import Settings, load_settings  # noqa: E402
from cloutsy.db import (  # noqa: E402
    PooledDatabase,
    QueryCounter,
    close_database,
    database,
    init_database,
)

TABLES = (
    "rate_limit_hits",
    "phone_changes",
    "idempotency_keys",
    "sessions",
    "otps",
    "brand_niches",
    "influencer_niches",
    "brands",
    "influencers",
    "niches",
)


def _reset_schema() -> None:
    """Start the session from an empty schema, whatever an earlier run left."""
    with database.connection_context():
        if migrations.status() and any(m.applied for m in migrations.status()):
            migrations.rollback(all_=True)
        for table in (*TABLES, "schema_migration"):
            database.execute_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
        database.execute_sql("DROP FUNCTION IF EXISTS cloutsy_set_updated_at() CASCADE")
        migrations.apply()
        catalogue.seed_niches()


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings of the test database (pool of 5, as in production)."""
    return load_settings()


@pytest.fixture(scope="session")
def pool(settings: Settings) -> Iterator[PooledDatabase]:
    """The migrated, seeded test database behind the `database` proxy."""
    # The suite's harness drops and recreates the schema: it connects as the migrator
    # (owner rights: cloutsy_migrator on the embedded default, else MIGRATION_DATABASE_URL
    # or DATABASE_URL), as `invoke migrate` does; tests of the app's rights log in as it.
    db = init_database(settings, purpose="migrate")
    _reset_schema()
    yield db
    close_database()


@pytest.fixture
def db(pool: PooledDatabase) -> Iterator[PooledDatabase]:
    """The database inside a transaction that is rolled back after the test."""
    pool.connect(reuse_if_open=True)
    try:
        with pool.atomic() as txn:
            yield pool
            txn.rollback()
    finally:
        pool.close()


def truncate_all(pool: PooledDatabase) -> None:
    """Remove every row but the niche catalogue (committed tests clean up with this)."""
    with pool.connection_context():
        pool.execute_sql(
            "TRUNCATE idempotency_keys, rate_limit_hits, phone_changes, sessions, otps, "
            "brand_niches, influencer_niches, brands, influencers "
            "RESTART IDENTITY CASCADE"
        )
        catalogue.seed_niches()


@pytest.fixture
def committed(pool: PooledDatabase) -> Iterator[PooledDatabase]:
    """The database with real commits (no outer transaction); truncated afterwards."""
    truncate_all(pool)
    yield pool
    if not pool.is_closed():
        pool.close()
    truncate_all(pool)


@pytest.fixture
def throwaway_server() -> Iterator[Path]:
    """A private embedded PostgreSQL this test may stop, crash and restart."""
    base = Path(tempfile.mkdtemp(prefix="cloutsy-pg-"))
    pgdata = base / "pgdata"
    try:
        embedded.server_uri(pgdata)
        yield pgdata
    finally:
        with contextlib.suppress(Exception):  # already stopped by the test
            embedded.stop(pgdata, "immediate")
        shutil.rmtree(base, ignore_errors=True)


ADMIN_TOKEN = "test-admin-token-0123456789-abcdefghij"  # >= 32 characters (issue 12)


@pytest.fixture(scope="session")
def app_settings(settings: Settings) -> Settings:
    """Settings for the app under test: development, with an admin token.

    No niche cache: each test's rows live in its own rolled-back transaction, so a copy
    built in one test must not answer in the next (tests/test_niche_cache.py tests it).
    """
    return settings.with_overrides(admin_token=ADMIN_TOKEN, niches_cache_s=0.0)


@pytest.fixture(scope="session")
def wsgi_app(pool: PooledDatabase, app_settings: Settings):  # noqa: ANN201
    """The real WSGI app (one per session: building it is not what we test)."""
    from cloutsy.api import create_app

    return create_app(app_settings)


@pytest.fixture
def client(db: PooledDatabase, wsgi_app, suite_secrets):  # noqa: ANN001, ANN201
    """A WebTest client on the real app, inside the test's rolled-back transaction.

    Every JSON response is checked for a password, and the secrets each request and
    response carries are noted for the end-of-suite log check (`suite_secrets`); peewee's
    query log is on meanwhile, as in development.
    """
    peewee_log = logging.getLogger("peewee")
    level = peewee_log.level
    peewee_log.setLevel(logging.DEBUG)
    # The limiter remembers full keys per process; this test's rows are rolled back.
    wsgi_app.config["cloutsy.api"].limiter.forget()
    try:
        yield checked_test_app()(wsgi_app, suite_secrets)
    finally:
        peewee_log.setLevel(level)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def queries(pool: PooledDatabase) -> QueryCounter:
    """`with queries as q: …; q.count` counts the statements the block ran (every thread)."""
    return QueryCounter(pool)


# --- secrets: never in a response, never in the log -----------------------------------------

PHONE_RUN = re.compile(r"\+?\d{8,15}")
CODE_RUN = re.compile(r"(?<![0-9A-Za-z])\d{6}(?![0-9A-Za-z])")


def _json_leaks(value: Any, passwords: set[str], path: str = "$") -> list[str]:
    """Where a JSON value holds a `password` key, a known password or a password hash."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if "password" in str(key).lower():
                found.append(f"{path}.{key}")
            found.extend(_json_leaks(item, passwords, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_json_leaks(item, passwords, f"{path}[{i}]"))
    elif isinstance(value, str) and (value in passwords or value.startswith(("$argon2", "$2b$"))):
        found.append(path)
    return found


class SuiteSecrets(logging.Handler):
    """The secrets the suite created (phones, OTP codes, tokens, passwords) and its whole log.

    Installed once on the root logger; `leaks()` says which secret reached a log line.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.phones: set[str] = set()
        self.codes: set[str] = set()
        self.texts: set[str] = set()  # tokens and passwords: searched as plain text
        self.passwords: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def note_phone(self, raw: Any) -> None:
        from cloutsy.schemas import normalise_phone

        if not isinstance(raw, str):
            return
        try:
            e164 = normalise_phone(raw)
        except ValueError:
            return
        self.phones.update({e164, e164[3:] if e164.startswith("+91") else e164})

    def note_token(self, token: Any) -> None:
        if isinstance(token, str) and len(token) >= 16:
            self.texts.add(token)

    def note_request(self, req: Any) -> None:
        header = req.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            self.note_token(header[7:].strip())
        # Large bodies are left alone: reading them makes WebOb spool to an unclosed temp file.
        if not req.content_type.startswith("application/json") or (req.content_length or 0) > 8192:
            return
        try:
            body = json.loads(req.body)
        except (ValueError, RecursionError):  # the malformed bodies tests send on purpose
            return
        if not isinstance(body, dict):
            return
        for key in ("phone", "pocContactNumber"):
            self.note_phone(body.get(key))
        password = body.get("password")
        if isinstance(password, str) and len(password) >= 8:
            self.passwords.add(password)
            self.texts.add(password)
        if isinstance(body.get("otp"), str):
            self.codes.add(body["otp"])

    def note_response(self, res: Any) -> None:
        if res.content_type != "application/json" or not res.body:
            return
        body = res.json
        leaks = _json_leaks(body, self.passwords)
        assert not leaks, f"a password in a response: {leaks}"
        if isinstance(body, dict):
            self.note_token(body.get("token"))
            if isinstance(body.get("debugOtp"), str):
                self.codes.add(body["debugOtp"])
            for key in ("phone", "pocContactNumber"):
                self.note_phone(body.get(key))

    def leaks(self) -> list[str]:
        """Every noted secret that appears in a captured log line."""
        text = "\n".join(self.lines)
        phones = {p.lstrip("+") for p in self.phones}
        found = [f"phone {p}" for p in {m.lstrip("+") for m in PHONE_RUN.findall(text)} & phones]
        found += [f"code {c}" for c in set(CODE_RUN.findall(text)) & self.codes]
        found += [f"secret {t[:6]}…" for t in self.texts if t in text]
        return found


@pytest.fixture(scope="session")
def suite_secrets() -> Iterator[SuiteSecrets]:
    """From first use to the end of the suite: capture every log record (redacted as in
    production) and fail if any secret the suite created shows up in it.
    """
    from cloutsy.logs import redact_every_record

    redact_every_record()
    sink = SuiteSecrets()
    root, ours = logging.getLogger(), logging.getLogger("cloutsy")
    level = ours.level
    ours.setLevel(logging.DEBUG)
    root.addHandler(sink)
    try:
        yield sink
    finally:
        root.removeHandler(sink)
        ours.setLevel(level)
    leaks = sink.leaks()
    assert not leaks, f"secrets reached the log: {leaks[:10]}"


@functools.cache
def checked_test_app() -> type:
    """A TestApp class that shows each request and response to `SuiteSecrets`."""
    from webtest import TestApp

    class CheckedTestApp(TestApp):
        def __init__(self, app: Any, secrets: SuiteSecrets) -> None:
            super().__init__(app)
            self.secrets = secrets

        def do_request(self, req, status=None, expect_errors=None):  # noqa: ANN001, ANN201
            self.secrets.note_request(req)
            res = super().do_request(req, status=status, expect_errors=expect_errors)
            self.secrets.note_response(res)
            return res

    return CheckedTestApp
