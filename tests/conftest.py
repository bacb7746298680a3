"""Fixtures: a real PostgreSQL (embedded by default, DATABASE_URL's when set), clean per test.

The session applies every migration to a database of its own: on the embedded
server `cloutsy_test`; with DATABASE_URL/POSTGRES_HOST, the database named there
(which the suite wipes: give it a throwaway one). Each test runs inside an outer
transaction rolled back afterwards (~4 ms); tests that must commit (races,
restarts, real HTTP) use `committed`, which truncates after them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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

pytest_plugins = ["pytester", "tests.datasets", "tests.leak_check"]

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
    response carries are noted for the per-test log check (tests/leak_check.py); peewee's
    query log is on meanwhile, as in development.
    """
    from tests.leak_check import checked_test_app  # a plugin: imported after registration

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
