"""Least-privilege database roles (CONTRACT §9): who may do what, made real by `invoke db.roles`.

- `cloutsy_owner` (NOLOGIN) owns every object of the schema.
- `cloutsy_migrator` (LOGIN) is a member of the owner and acts as it (`SET role` on the
  role), so what migrations create is owned by `cloutsy_owner`: migrations, seeding, restores.
- `cloutsy_app` (LOGIN): SELECT, INSERT, UPDATE, DELETE on the tables, USAGE on their
  sequences, nothing else (no DDL, no TRUNCATE, no CREATE anywhere); its statement_timeout
  is set on the role, so it holds behind PgBouncer too.
- `cloutsy_analyst` (LOGIN): SELECT on the columns that are neither PII, digests, password,
  OTP nor token hashes (`cloutsy.models.analyst_hidden`).

`ensure()` is idempotent and works on an empty database and on one a superuser already
migrated (ownership moves to `cloutsy_owner`). Default privileges keep the app's grants
right for tables later migrations create; column grants cannot be defaulted, so `grant()`
runs again after every `migrate` (`cloutsy.migrations.apply`). Passwords come from the
configured URLs and are sent as bound parameters, never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg2
from psycopg2 import sql

from cloutsy.config import Settings

log = logging.getLogger(__name__)

OWNER = "cloutsy_owner"
MIGRATOR = "cloutsy_migrator"
APP = "cloutsy_app"
ANALYST = "cloutsy_analyst"
LOGIN_ROLES = (MIGRATOR, APP, ANALYST)
# Only these attributes, whatever an earlier version or a person gave the roles.
ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def _ident(name: str) -> sql.Composable:
    return sql.Identifier(name)


def _exists(cur: Any, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def passwords_from(urls: Iterable[str | None]) -> dict[str, str]:
    """Role -> password, for each configured URL that logs in as one of the login roles."""
    found: dict[str, str] = {}
    for url in urls:
        if not url:
            continue
        parsed = urlparse(url)
        user = unquote(parsed.username or "")
        if user in LOGIN_ROLES and parsed.password:
            found[user] = unquote(parsed.password)
    return found


def ensure(cur: Any, database: str, settings: Settings, passwords: dict[str, str]) -> None:
    """Create or update the four roles and their rights on `database` (caller commits)."""
    for role in (OWNER, *LOGIN_ROLES):
        login = "LOGIN" if role in LOGIN_ROLES else "NOLOGIN"
        verb = "ALTER" if _exists(cur, role) else "CREATE"
        cur.execute(sql.SQL(f"{verb} ROLE {{}} {login} {ATTRIBUTES}").format(_ident(role)))
    for role, password in passwords.items():
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(_ident(role)), (password,))
    cur.execute(sql.SQL("GRANT {} TO {}").format(_ident(OWNER), _ident(MIGRATOR)))
    # The migrator's sessions act as the owner, so the objects they create belong to it.
    cur.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(_ident(MIGRATOR), _ident(OWNER)))
    timeout = sql.Literal(f"{settings.statement_timeout_ms}ms")
    cur.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(_ident(APP), timeout))

    db = _ident(database)
    cur.execute(sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
    cur.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, _ident(OWNER)))
    for role in (APP, ANALYST):
        cur.execute(
            sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}").format(db, _ident(role))
        )
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, _ident(role)))
    cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    cur.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(_ident(OWNER)))
    cur.execute(
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(_ident(APP), _ident(ANALYST))
    )

    _own_everything(cur)
    defaults = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public ").format(
        _ident(OWNER)
    )
    cur.execute(
        defaults
        + sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}").format(_ident(APP))
    )
    cur.execute(defaults + sql.SQL("GRANT USAGE ON SEQUENCES TO {}").format(_ident(APP)))
    grant(cur)
    log.debug("roles %s, %s, %s, %s are in place on %s", OWNER, MIGRATOR, APP, ANALYST, database)


def _own_everything(cur: Any) -> None:
    """Hand every table, sequence, view and function of the schema to the owner role."""
    cur.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
        "AND pg_get_userbyid(c.relowner) <> %s "
        # A sequence owned by a column moves with its table.
        "AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
        "AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0))",
        (OWNER,),
    )
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for name, kind in cur.fetchall():
        statement = f"ALTER {kinds[kind]} {{}} OWNER TO {{}}"
        cur.execute(sql.SQL(statement).format(_ident(name), _ident(OWNER)))
    cur.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s",
        (OWNER,),
    )
    for (signature,) in cur.fetchall():
        cur.execute(
            sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(signature), _ident(OWNER))
        )


def grant(cur: Any) -> None:
    """The app's table rights and the analyst's column rights, as the tables are now.

    Run by `ensure()` and after every migration (new columns are not covered by default
    privileges). Nothing happens when the roles do not exist (a database nobody ran
    `db.roles` on).
    """
    from cloutsy.models import ANALYST_READS, MODELS, analyst_hidden  # what is PII, once

    if not _exists(cur, APP) or not _exists(cur, ANALYST):
        return
    app, analyst = _ident(APP), _ident(ANALYST)
    cur.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            app
        )
    )
    cur.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(app))
    cur.execute("SELECT to_regclass('schema_migration') IS NOT NULL")
    if cur.fetchone()[0]:  # the app reads the history (/health), never writes it
        cur.execute(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE ON schema_migration FROM {}").format(app)
        )
    cur.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(analyst))
    tables = {model._meta.table_name for model in MODELS} | set(ANALYST_READS)
    cur.execute(
        "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = 'public' GROUP BY table_name"
    )
    for table, columns in cur.fetchall():
        every = sql.SQL(", ").join(_ident(c) for c in columns)
        cur.execute(
            sql.SQL("REVOKE SELECT ({}) ON {} FROM {}").format(every, _ident(table), analyst)
        )
        visible = [c for c in columns if c not in analyst_hidden(table)]
        if table in tables and visible:
            shown = sql.SQL(", ").join(_ident(c) for c in visible)
            cur.execute(
                sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(shown, _ident(table), analyst)
            )


def ensure_on(
    admin_url: str, database: str, settings: Settings, urls: Iterable[str | None]
) -> None:
    """`ensure()` over a fresh connection with owner rights, in one transaction."""
    conn = psycopg2.connect(admin_url, connect_timeout=settings.connect_timeout_s)
    try:
        with conn, conn.cursor() as cur:
            # Two processes creating roles at once would race on CREATE ROLE.
            cur.execute("SELECT pg_advisory_xact_lock(7411, 1)")
            ensure(cur, database, settings, passwords_from(urls))
    finally:
        conn.close()


def problems(cur: Any) -> list[str]:
    """Why the connected role is more than the app needs (empty: least privilege holds)."""
    cur.execute(
        "SELECT current_user, r.rolsuper, "
        "EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = 'public' "
        "        AND pg_has_role(current_user, t.tableowner, 'USAGE')), "
        "has_schema_privilege(current_user, 'public', 'CREATE') "
        "FROM pg_roles r WHERE r.rolname = current_user"
    )
    user, superuser, owns, creates = cur.fetchone()
    found = []
    if superuser:
        found.append(f"{user} is a superuser")
    if owns:
        found.append(f"{user} owns the tables")
    if creates:
        found.append(f"{user} may create in schema public")
    return found
