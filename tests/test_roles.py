"""Least-privilege roles (CONTRACT §9): what each role may and may not do, on a real server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import psycopg2
import pytest
from psycopg2 import errors

from cloutsy import analytics, catalogue, migrations, roles, timings
from cloutsy.db import connect_params, connection_url, database, make_pool, with_user
from cloutsy.models import MODELS, analyst_hidden
from tests.leak_check import checked_test_app


def _connect(settings, url: str):
    params = connect_params(url, settings)
    params.pop("connection_factory", None)
    params.pop("options", None)  # what the role itself sets, not what the client asks
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def _url_as(settings, role: str) -> str:
    """The suite database's URL logged in as `role` (embedded: trust; else from the env)."""
    if settings.embedded:
        return connection_url(settings, {roles.APP: "app", roles.ANALYST: "analytics"}[role])
    url = {roles.APP: settings.database_url, roles.ANALYST: settings.analytics_database_url}[role]
    if not url or urlparse(url).username != role:
        pytest.skip(f"no URL logs in as {role} here (set it up with invoke db.roles)")
    return url


@pytest.fixture
def as_role(pool, settings):
    """`with as_role(role) as cur:` a cursor logged in as that role on the suite database."""
    opened = []

    @contextlib.contextmanager
    def open_as(role: str) -> Iterator:
        conn = _connect(settings, _url_as(settings, role))
        opened.append(conn)
        with conn.cursor() as cur:
            yield cur

    yield open_as
    for conn in opened:
        conn.close()


@contextlib.contextmanager
def proxy_on(settings, url: str) -> Iterator:
    """Point the `database` proxy at a pool on `url` for a while (the suite's pool after)."""
    saved = database.obj
    other = make_pool(settings, url)
    database.initialize(other)
    try:
        yield other
    finally:
        other.close_all()
        database.initialize(saved)


DENIED = (errors.InsufficientPrivilege,)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE app_made (id int)",
        "DROP TABLE niches",
        "ALTER TABLE niches ADD COLUMN extra int",
        "TRUNCATE sessions",
        "CREATE SCHEMA app_schema",
        "CREATE TEMP TABLE scratch (id int)",
        "CREATE INDEX app_index ON niches (icon)",
        "CREATE FUNCTION app_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "INSERT INTO schema_migration (name) VALUES ('x')",
    ],
)
def test_the_app_role_may_not_change_the_schema(as_role, statement):
    with as_role(roles.APP) as cur, pytest.raises(DENIED):
        cur.execute(statement)


def test_the_app_role_is_least_privilege_with_its_timeout_on_the_role(as_role, settings):
    with as_role(roles.APP) as cur:
        assert roles.problems(cur) == []
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == f"{settings.statement_timeout_ms // 1000}s"
        cur.execute("SELECT count(*) FROM schema_migration")  # /health reads the history


@pytest.mark.parametrize(
    ("table", "column"),
    [
        (t, c)
        for t in ("influencers", "brands", "otps", "sessions")
        for c in sorted(analyst_hidden(t))
    ],
)
def test_the_analyst_may_not_read_pii_digests_or_secrets(as_role, table, column):
    with as_role(roles.ANALYST) as cur, pytest.raises(DENIED):
        cur.execute(f"SELECT {column} FROM {table} LIMIT 1")


def test_the_analyst_reads_every_other_column_and_may_not_write(as_role, pool):
    with as_role(roles.ANALYST) as cur:
        for model in MODELS:
            table = model._meta.table_name
            visible = [f.column_name for f in model._meta.sorted_fields]
            visible = [c for c in visible if c not in analyst_hidden(table)]
            cur.execute(f"SELECT {', '.join(visible)} FROM {table} LIMIT 1")
        with pytest.raises(DENIED):
            cur.execute("UPDATE niches SET icon = 'x'")
        assert "owns the tables" not in " ".join(roles.problems(cur))


def test_the_analytics_run_as_the_analyst(pool, settings):
    """What the notebooks call, on a pool logged in as cloutsy_analyst."""
    with proxy_on(settings, _url_as(settings, roles.ANALYST)) as db, db.connection_context():
        assert database.execute_sql("SELECT current_user").fetchone()[0] == roles.ANALYST
        analytics.signups("week")
        analytics.verification_funnel()
        analytics.profile_funnel()
        analytics.demand_supply()
        analytics.niches_per_account()
        analytics.niche_cooccurrence("brand")
        timings.eager_vs_lazy(page_size=5, repeat=2)


def test_every_endpoint_works_as_the_app_role(committed, settings, app_settings, suite_secrets):
    from cloutsy.api import create_app

    with proxy_on(settings, _url_as(settings, roles.APP)):
        client = checked_test_app()(create_app(app_settings), suite_secrets)
        admin = {"Authorization": f"Bearer {app_settings.admin_token}"}
        assert client.get("/health").json["database"]["ok"]
        niche = client.get("/niches").json["items"][0]
        client.get(f"/niches/{niche['slug']}", status=200)
        client.post_json("/seed/niches", {}, headers=admin, status=200)
        person = {"name": "Role", "username": "role.app", "email": "role@app.io",
                  "phone": "9811122233", "nicheIds": [niche["id"]]}  # fmt: skip
        pid = client.post_json("/influencers", person, status=201).json["id"]
        brand = {"email": "b@app.io", "password": "correct horse battery", "phone": "8811122233",
                 "brandName": "B", "username": "b.app"}  # fmt: skip
        bid = client.post_json("/brands", brand, status=201).json["id"]
        client.get("/influencers?limit=5", status=200)
        client.get(f"/brands?niche={niche['slug']}", status=200)
        sent = client.post_json("/auth/otp/send", {"phone": "9811122233"}, status=202).json
        token = client.post_json(
            "/auth/otp/verify", {"phone": "9811122233", "otp": sent["debugOtp"]}
        ).json["token"]
        me = {"Authorization": f"Bearer {token}"}
        assert client.get("/me", headers=me).json["email"] == "role@app.io"
        client.patch_json(f"/influencers/{pid}", {"bio": "hi"}, headers=me, status=200)
        client.put_json(f"/influencers/{pid}/niches", {"nicheIds": []}, headers=me, status=200)
        login = {"email": "b@app.io", "password": "correct horse battery"}
        brand_token = client.post_json("/auth/brands/login", login).json["token"]
        bme = {"Authorization": f"Bearer {brand_token}"}
        client.post("/auth/logout", headers=bme, status=204)
        client.delete(f"/brands/{bid}", headers=admin, status=204)
        client.post(f"/influencers/{pid}/erase", headers=me, status=204)
        client.get("/metrics", status=200)


# --- db.roles itself: idempotent, on an empty and on a superuser-migrated database -----------


@pytest.fixture
def scratch(settings):
    """A new empty database on the suite's server; (admin URL, name). Dropped afterwards."""
    if not settings.embedded:
        pytest.skip("needs a server where the suite may create databases (the embedded one)")
    from cloutsy import embedded

    name = f"cloutsy_roles_{uuid.uuid4().hex[:8]}"
    admin = connection_url(settings, "admin")
    postgres = with_user(admin.replace(f"/{settings.postgres_db}?", "/postgres?"), "postgres")
    embedded.ensure_database(postgres, name)
    yield admin.replace(f"/{settings.postgres_db}?", f"/{name}?"), name
    embedded.drop_database(postgres, name)


def _owners(cur) -> set[str]:
    cur.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in cur.fetchall()}


def _privileges(cur) -> dict:
    cur.execute(
        "SELECT has_table_privilege('cloutsy_app', 'influencers', 'INSERT'), "
        "has_table_privilege('cloutsy_app', 'influencers', 'TRUNCATE'), "
        "has_sequence_privilege('cloutsy_app', 'influencers_id_seq', 'USAGE'), "
        "has_column_privilege('cloutsy_analyst', 'influencers', 'username', 'SELECT'), "
        "has_column_privilege('cloutsy_analyst', 'influencers', 'erased_at', 'SELECT'), "
        "has_column_privilege('cloutsy_analyst', 'influencers', 'email', 'SELECT'), "
        "has_column_privilege('cloutsy_analyst', 'influencers', 'phone_digest', 'SELECT'), "
        "has_column_privilege('cloutsy_analyst', 'brands', 'password', 'SELECT'), "
        "has_column_privilege('cloutsy_analyst', 'sessions', 'token_hash', 'SELECT')"
    )
    return dict(
        zip(
            [
                "insert",
                "truncate",
                "sequence",
                "username",
                "erased_at",
                "email",
                "digest",
                "password",
                "token",
            ],
            cur.fetchone(),
            strict=True,
        )
    )


RIGHT = {
    "insert": True,
    "truncate": False,
    "sequence": True,
    "username": True,
    "erased_at": True,
    "email": False,
    "digest": False,
    "password": False,
    "token": False,
}


def test_db_roles_on_an_empty_database_then_migrations_as_the_migrator(settings, scratch):
    admin, name = scratch
    roles.ensure_on(admin, name, settings, ())
    roles.ensure_on(admin, name, settings, ())  # idempotent
    with proxy_on(settings, with_user(admin, roles.MIGRATOR)) as db, db.connection_context():
        assert migrations.apply() == [m.name for m in migrations.status()]  # every one
        catalogue.seed_niches()
    conn = _connect(settings, admin)
    try:
        with conn.cursor() as cur:
            assert _owners(cur) == {roles.OWNER}
            assert _privileges(cur) == RIGHT
    finally:
        conn.close()


def test_db_roles_on_a_superuser_migrated_database_and_later_migrations(settings, scratch):
    admin, name = scratch
    with proxy_on(settings, admin) as db, db.connection_context():  # as the superuser
        migrations.apply()
    roles.ensure_on(admin, name, settings, ())
    conn = _connect(settings, admin)
    try:
        with conn.cursor() as cur:
            assert _owners(cur) == {roles.OWNER}  # ownership moved
            assert _privileges(cur) == RIGHT
        # A later migration (0002 again, which adds columns) as the migrator keeps them right,
        # and a table it creates is the app's to use at once (default privileges).
        with proxy_on(settings, with_user(admin, roles.MIGRATOR)) as db, db.connection_context():
            migrations.rollback()
            migrations.apply()
            database.execute_sql("CREATE TABLE later (id serial PRIMARY KEY, note text)")
        with conn.cursor() as cur:
            assert _privileges(cur) == RIGHT
            cur.execute("SELECT has_table_privilege('cloutsy_app', 'later', 'DELETE')")
            assert cur.fetchone()[0]
    finally:
        conn.close()


def test_passwords_come_from_the_configured_urls():
    urls = (
        "postgresql://cloutsy_app:s3cret%40x@db:5432/c",
        "postgresql://cloutsy_analyst@db/c",
        "postgresql://someone:else@db/c",
        None,
    )
    assert roles.passwords_from(urls) == {"cloutsy_app": "s3cret@x"}


@pytest.mark.parametrize(
    ("purpose", "reason"),
    [("admin", "is a superuser"), ("migrate", "owns the tables"), ("app", None)],
)
def test_staging_and_production_refuse_to_serve_as_an_overpowered_role(
    pool, settings, capsys, purpose, reason
):
    from invoke import Exit

    import tasks

    if not settings.embedded:
        pytest.skip("needs the roles' URLs of the embedded server")
    url = connection_url(settings, purpose)  # type: ignore[arg-type]
    for env in ("staging", "production"):
        chosen = settings.with_overrides(env=env, database_url=url)
        if reason is None:
            tasks.app_role_check(chosen)
            assert "the service connects as cloutsy_app" in capsys.readouterr().out
        else:
            with pytest.raises(Exit) as refused:
                tasks.app_role_check(chosen)
            message = str(refused.value.message)
            assert reason in message and env in message and "\n" not in message
    # Development says so, and serves.
    if reason is not None:
        tasks.app_role_check(settings.with_overrides(database_url=url))
        out = capsys.readouterr().out
        assert "(warning: " in out and reason in out


@pytest.mark.slow
def test_a_fresh_clone_serves_as_the_app_role_with_nothing_configured(tmp_path):
    """`invoke serve` on an empty data dir: a new embedded server, the roles, migrations as
    the migrator, then the API answering /health while connected as cloutsy_app."""
    import json

    from cloutsy import embedded
    from tests.engines import start_server
    from tests.helpers import http

    data = tmp_path / "data"
    server = start_server(tmp_path, CLOUTSY_DATA_DIR=str(data), POSTGRES_DB="", CLOUTSY_WORKERS="1")
    try:
        status, _, body = http("GET", f"{server.url}/health")
        assert status == 200 and json.loads(body)["database"]["pendingMigrations"] == 0
        assert "the service connects as cloutsy_app" in server.log.read_text()
    finally:
        server.stop()
        embedded.stop(data / "pgdata")
