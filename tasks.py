"""Developer tasks: `invoke --list` shows them all.

Every task fails with one line and a non-zero exit on bad input (an `Exit` raised
at this edge from the package's errors), never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Collection, Context, Exit, task
from invoke.parser.parser import ParseMachine

ROOT = Path(__file__).resolve().parent

# Positional arguments that may be left out (`invoke db.restore --to TIME`, `invoke db.verify`).
# invoke 3 has no optional positionals: a positional without a value fails the parse. At the
# end of a task's arguments these get "" instead, which the task reads as "not given".
OPTIONAL_POSITIONALS = {"db.restore": {"file"}, "db.verify": {"backup"}}
_complete_context = ParseMachine.complete_context


def _complete_with_optional_positionals(self: ParseMachine) -> None:
    context = self.context
    if context is not None:
        for arg in context.positional_args:
            if arg.value is None and arg.name in OPTIONAL_POSITIONALS.get(context.name or "", ()):
                arg.set_value("", cast=False)
    _complete_context(self)


ParseMachine.complete_context = _complete_with_optional_positionals  # type: ignore[method-assign]


@contextmanager
def edge() -> Iterator[None]:
    """Turn the package's errors into a one-line `Exit`: the one place a task fails.

    Library code raises `cloutsy.errors` (a `TaskError` for a missing tool, a failed
    notebook, bench or load test); no task catches them itself.
    """
    from peewee import DatabaseError, InterfaceError
    from playhouse.migrations import MigrationError

    from cloutsy.config import ConfigError
    from cloutsy.errors import CloutsyError

    try:
        yield
    except ConfigError as exc:
        raise Exit(f"configuration error: {exc}", code=2) from None
    except CloutsyError as exc:
        raise Exit(f"error: {exc.message}", code=1) from None
    except MigrationError as exc:
        raise Exit(f"migration error: {exc}", code=1) from None
    except (DatabaseError, InterfaceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Exit(f"database error: {first}", code=1) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


def boot(wait: float = 15.0, purpose: str = "migrate"):  # noqa: ANN201 - returns Settings
    """Read settings, set up logging, open the pool (as `purpose`'s role) and wait for it.

    Tasks change the schema and load data as the migrator (MIGRATION_DATABASE_URL, or
    `cloutsy_migrator` on the embedded server); the service itself runs as the app role.
    """
    from cloutsy import crypto
    from cloutsy.config import load_settings, warn_if_insecure
    from cloutsy.db import init_database, wait_for_database
    from cloutsy.logs import configure_logging

    settings = load_settings()
    configure_logging(settings, query_log=False)
    warn_if_insecure(settings)
    crypto.configure(settings)
    init_database(settings, purpose=purpose)  # type: ignore[arg-type]
    wait_for_database(timeout=wait)
    return settings


def app_role_check(settings) -> None:  # noqa: ANN001 - Settings, imported lazily
    """Say which role the service will run as; outside development refuse an over-powered one."""
    import psycopg2

    from cloutsy import roles
    from cloutsy.db import connect_params, connection_url

    params = connect_params(connection_url(settings, "app"), settings)
    params.pop("connection_factory", None)
    conn = psycopg2.connect(**params)
    try:
        with conn.cursor() as cur:
            found = roles.problems(cur)
            cur.execute("SELECT current_user")
            user = cur.fetchone()[0]
    finally:
        conn.close()
    if found and not settings.is_development:
        raise Exit(
            f"error: refusing to serve in {settings.env} as {'; '.join(found)} "
            "(use the cloutsy_app role: invoke db.roles)",
            code=1,
        )
    say(f"the service connects as {user}" + (f" (warning: {'; '.join(found)})" if found else ""))


def say(message: str) -> None:
    print(message, flush=True)


def whole(option: str, raw: str | int, minimum: int = 0, maximum: int | None = None) -> int:
    """A task argument as a whole number in range, or a one-line `Exit` naming the option.

    Numeric options are declared as strings: invoke itself would turn `--port abc` into a
    ValueError traceback before the task runs. This is the one check for all of them,
    and it runs before any side effect.
    """
    from cloutsy.config import ConfigError, whole_number

    try:
        return whole_number(option, str(raw), minimum, maximum)
    except ConfigError as exc:
        raise Exit(f"error: {exc}", code=2) from None


def asked(question: str, yes: bool, refusal: str) -> bool:
    """True with `yes` or a 'y' typed at the terminal; without a terminal, refuse with `refusal`."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise Exit(f"error: {refusal} (no terminal to ask; pass --yes)", code=1)
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def confirm(question: str, yes: bool, refusal: str) -> None:
    """As `asked`, and a 'no' ends the task ("cancelled")."""
    if not asked(question, yes, refusal):
        raise Exit("cancelled", code=1)


def auto_sync(settings) -> None:  # noqa: ANN001 - Settings, imported lazily
    """In development, apply pending migrations and seed the niche catalogue (CONTRACT §3).

    Elsewhere the schema is never changed by a task other than `invoke migrate`: pending
    migrations are only reported.
    """
    from cloutsy import migrations
    from cloutsy.catalogue import seed_niches as upsert
    from cloutsy.db import database

    with database.connection_context():
        if settings.is_development:
            for name in migrations.apply():
                say(f"applied: {name}")
            result = upsert()
            if result.created or result.updated:
                say(f"niches: {result.created} created, {result.updated} updated")
        else:
            waiting = migrations.pending()
            if waiting:
                say(f"warning: {len(waiting)} migration(s) pending; run invoke migrate")


# --- serving -----------------------------------------------------------------------------


@task(
    name="serve",
    help={
        "host": "address to listen on (default CLOUTSY_HOST, 127.0.0.1)",
        "port": "port to listen on, 1-65535 (default CLOUTSY_PORT, 8080)",
        "workers": "server processes (default CLOUTSY_WORKERS, 2)",
    },
)
def serve(c: Context, host: str = "", port: str = "", workers: str = "") -> None:
    """Serve the API with granian (development: apply migrations and seed niches first)."""
    from cloutsy.config import PORT_MAX, WARNED_ENV

    env = dict(os.environ)
    if host:
        env["CLOUTSY_HOST"] = host
    if port:
        env["CLOUTSY_PORT"] = str(whole("--port", port, 1, PORT_MAX))
    if workers:
        env["CLOUTSY_WORKERS"] = str(whole("--workers", workers, 1, 256))
    with edge():
        from cloutsy.config import load_settings
        from cloutsy.serving import metrics_dir, port_taken, server_argv

        settings = load_settings(env)  # every setting checked before anything happens
        taken = port_taken(settings.host, settings.port)
        if taken:
            raise Exit(
                f"error: {taken}; stop that server or pick another port "
                "(invoke serve --port N, or CLOUTSY_PORT)",
                code=1,
            )
        os.environ.update(env)
        settings = boot(wait=30)
        from cloutsy.db import close_database

        auto_sync(settings)
        close_database()
        app_role_check(settings)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
        env[WARNED_ENV] = "1"  # this task warned already; the server and workers stay quiet
        argv = server_argv(settings)
    say(
        f"serving on http://{settings.host}:{settings.port} ({settings.env}, "
        f"{settings.workers} workers of {2 * settings.pool_max} threads sharing a pool of "
        f"{settings.pool_max}: requests beyond it wait up to {settings.pool_timeout:g} s, then 503)"
    )
    sys.stdout.flush()
    # Replace this process: SIGTERM then reaches the server directly.
    os.execve(sys.executable, argv, env)


# --- migrations --------------------------------------------------------------------------


@task(
    name="apply",
    default=True,
    help={
        "target": "stop after this migration",
        "backup": "production: take a logical backup first (on by default; --no-backup skips)",
        "lock-timeout-ms": "give up a lock wait after this long, then retry with backoff",
        "attempts": "tries per migration when a lock is not granted in time",
    },
)
def migrate_apply(
    c: Context,
    target: str = "",
    backup: bool = True,
    lock_timeout_ms: str = "3000",
    attempts: str = "5",
) -> None:
    """Apply pending migrations safely: lock_timeout + retries; production backs up first."""
    timeout_n = whole("--lock-timeout-ms", lock_timeout_ms, minimum=1)
    attempts_n = whole("--attempts", attempts, minimum=1, maximum=100)
    with edge():
        settings = boot()
        from cloutsy import migrations
        from cloutsy.db import database

        with database.connection_context():
            _, applied = migrations.migrate(
                settings,
                target or None,
                backup=backup,
                progress=say,
                lock_timeout_ms=timeout_n,
                attempts=attempts_n,
            )
        say("\n".join(f"applied: {name}" for name in applied) or "nothing to apply")


@task(name="lint")
def migrate_lint(c: Context) -> None:
    """Render every migration's SQL and lint it with squawk; exit 1 on an unsafe operation."""
    with edge():
        from cloutsy import migrations

        results = migrations.lint()
        for result in results:
            say(f"{'ok  ' if result.ok else 'FAIL'} {result.name}")
            if not result.ok:
                say(result.report)
        failed = [r.name for r in results if not r.ok]
        if failed:
            raise Exit(f"squawk found unsafe operations in {', '.join(failed)}", code=1)


@task(name="status")
def migrate_status(c: Context) -> None:
    """List migrations with when each was applied; exit 1 while any is pending."""
    with edge():
        boot()
        from cloutsy import migrations
        from cloutsy.db import database

        with database.connection_context():
            rows = migrations.status()
        for m in rows:
            when = m.applied.strftime("%Y-%m-%d %H:%M:%S") if m.applied else "pending"
            say(f"[{'x' if m.applied else ' '}] {m.name}  {when}")
        waiting = [m.name for m in rows if not m.applied]
        if waiting:
            raise Exit(f"{len(waiting)} migration(s) pending", code=1)
        say("up to date")


@task(
    name="rollback",
    help={
        "target": "revert every applied migration back through this one",
        "all": "revert every applied migration",
        "yes": "do not ask (needed without a terminal)",
    },
)
def migrate_rollback(
    c: Context,
    target: str = "",
    all: bool = False,  # noqa: A002
    yes: bool = False,
) -> None:
    """Revert the latest migration (or back through --target, or --all), after asking."""
    with edge():
        settings = boot()
        from cloutsy import migrations
        from cloutsy.db import database

        with database.connection_context():
            preview = migrations.preview_rollback(target or None, all_=all)
        if not preview.migrations:
            say("nothing to revert")
            return
        for line in preview.lines():
            say(line)
        confirm(
            f"Revert {len(preview.migrations)} migration(s), dropping {preview.rows:,} "
            "row(s)/value(s) listed above?",
            yes,
            "refusing to roll back without consent",
        )
        if settings.is_production:
            from cloutsy.backup import backup

            path = backup(settings)
            say(f"backup written first: {os.path.relpath(path, ROOT)}")
        with database.connection_context():
            reverted = migrations.rollback(target or None, all_=all)
        say("\n".join(f"reverted: {name}" for name in reverted) or "nothing to revert")


@task(name="create")
def migrate_create(c: Context, name: str) -> None:
    """Write a new numbered migration from the difference between models and database."""
    with edge():
        boot()
        from cloutsy import migrations
        from cloutsy.db import database

        with database.connection_context():
            path, diff = migrations.create(name)
        say(f"created {os.path.relpath(path, ROOT)}")
        say(str(diff) if diff else "models match the database: wrote an empty skeleton")


# --- seeding -----------------------------------------------------------------------------


@task(name="niches", default=True)
def seed_niches(c: Context) -> None:
    """Upsert the niche catalogue (idempotent: a second run changes nothing)."""
    with edge():
        boot()
        from cloutsy.catalogue import seed_niches as upsert
        from cloutsy.db import database

        with database.connection_context():
            result = upsert()
        say(f"niches: {result.created} created, {result.updated} updated, {result.total} total")


def progress_bar(stage: str, done: int, total: int) -> None:
    """Draw `stage [#####.....] done/total` on stderr; a stage ends its line when done."""
    width = 30
    filled = width * done // total if total else width
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\r{stage:<18} [{bar}] {done:,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@task(
    name="demo",
    help={
        "influencers": "influencer accounts to add (default 10,000)",
        "brands": "brand accounts to add (default 1,000)",
        "days": "spread the sign-ups over this many days before today (default 365)",
        "random-seed": "generator seed: the same seed on an empty database gives the same rows",
        "append": "add to a database that already has accounts (ids continue after theirs)",
    },
)
def seed_demo_data(
    c: Context,
    influencers: str = "10000",
    brands: str = "1000",
    days: str = "365",
    random_seed: str = "42",
    append: bool = False,
) -> None:
    """Fill the database with realistic demo accounts for the notebooks (--append to add more)."""
    import time

    counts = {
        "influencers": whole("--influencers", influencers, 0, 10_000_000),
        "brands": whole("--brands", brands, 0, 1_000_000),
        "days": whole("--days", days, 1, 3650),
        "seed": whole("--random-seed", random_seed, 0, 2**32 - 1),
    }
    with edge():
        auto_sync(boot())
        from cloutsy import demo
        from cloutsy.catalogue import seed_niches as upsert
        from cloutsy.db import database

        with database.connection_context():
            upsert()
            existing = demo.count_accounts()
            if existing and not append:
                raise Exit(
                    f"error: the database already has {existing:,} accounts; "
                    "pass --append to add demo accounts to them",
                    code=1,
                )
            started = time.perf_counter()
            result = demo.seed_demo(
                counts["influencers"],
                counts["brands"],
                counts["days"],
                counts["seed"],
                progress_bar,
            )
        say(
            f"demo data: {result.influencers:,} influencers ({result.influencer_niches:,} niche "
            f"links), {result.brands:,} brands ({result.brand_niches:,} niche links) "
            f"in {time.perf_counter() - started:.1f} s"
        )


# --- backups -----------------------------------------------------------------------------


@task(
    name="backup",
    help={
        "base": "a physical base backup (pg_basebackup) for point-in-time recovery, "
        "turning on WAL archiving first if needed",
        "keep": "then delete all but the newest N backups of that kind (base: and the WAL "
        "only they needed)",
    },
)
def db_backup(c: Context, base: bool = False, keep: str = "0") -> None:
    """Back up to backups/ with a manifest: pg_dump, or --base for point-in-time recovery."""
    import time

    keep_n = whole("--keep", keep, minimum=0)
    with edge():
        settings = boot()
        started = time.perf_counter()
        if base:
            from cloutsy.pitr import base_backup

            path = base_backup(settings, keep=keep_n, progress=say)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        else:
            from cloutsy.backup import backup

            path = backup(settings, keep=keep_n)
            size = path.stat().st_size
        say(
            f"backup written: {path} ({size:,} bytes, manifest beside it) "
            f"in {time.perf_counter() - started:.1f} s"
        )


@task(
    name="restore",
    positional=["file"],
    help={
        "file": "a logical dump (backups/cloutsy-*.dump) to load into the configured database",
        "to": "point-in-time recovery: a time with its offset, e.g. '2026-11-29 10:15:00+00'",
        "yes": "do not ask before replacing data",
    },
)
def db_restore(c: Context, file: str = "", to: str = "", yes: bool = False) -> None:
    """Restore a dump FILE, or --to TIME from base backups + WAL (asks first; --yes skips)."""
    import datetime as dt
    import time

    with edge():
        if bool(file) == bool(to):
            raise Exit("error: give either a backup FILE or --to TIME", code=1)
        if to:
            try:
                when = dt.datetime.fromisoformat(to.strip().replace(" ", "T", 1))
            except ValueError:
                raise Exit(
                    f"error: --to {to!r} is not a time like 2026-11-29 10:15:00+00"
                ) from None
            if when.tzinfo is None:
                raise Exit("error: --to needs an offset, e.g. 2026-11-29 10:15:00+00", code=1)
            settings = boot()
            from cloutsy.pitr import restore_to

            started = time.perf_counter()
            before = restore_to(
                settings,
                when,
                lambda q: asked(q, yes, "refusing to restore without --yes"),
                progress=say,
            )
            say(f"restored to {when.isoformat()} in {time.perf_counter() - started:.1f} s")
            say(f"previous data kept in {before} (delete it once the restore is checked)")
            return
        path = Path(file)
        if not path.is_file():
            raise Exit(f"error: no such backup file: {file}", code=1)
        settings = boot()
        from cloutsy.backup import restore

        confirm(
            f"Replace the contents of the configured database with {file}?",
            yes,
            "refusing to restore without --yes",
        )
        restore(settings, path)
        say(f"restored {file}")


@task(
    name="verify",
    positional=["backup"],
    help={"backup": "a dump file or base backup directory (default: newest)"},
)
def db_verify(c: Context, backup: str | None = None) -> None:
    """Restore the newest (or the named) backup into scratch and check it against its manifest."""
    with edge():
        settings = boot()
        from cloutsy.backup import verify

        result = verify(settings, Path(backup) if backup else None, progress=say)
        for line in result.lines():
            say(line)
        if not result.ok:
            raise Exit(f"verify failed: {result.backup.name} differs from its manifest", code=1)
        say(f"verified {result.backup.name}: {len(result.checks)} tables in {result.seconds:.1f} s")


@task(name="purge", help={"batch": "rows deleted per transaction (default 1000)"})
def db_purge(c: Context, batch: str = "1000") -> None:
    """Delete expired codes, sessions, limit counters, idempotency keys; compact the rollups."""
    batch_n = whole("--batch", batch, minimum=1)
    with edge():
        boot()
        from cloutsy.db import database
        from cloutsy.models import utcnow
        from cloutsy.services.purge import compact_rollups, purge

        def show(label: str, total: int) -> None:
            say(f"  {label}: {total:,} deleted so far")

        with database.connection_context():
            done = purge(utcnow(), batch_n, show)
            folded = compact_rollups()
        say("purged: " + ", ".join(f"{n:,} {label}" for label, n in done.items()))
        say(f"rollups compacted: {folded:,} delta rows folded")


# --- the embedded server -------------------------------------------------------------------


def embedded_pgdata() -> Path:
    """The embedded server's data directory; Exit when another server is configured."""
    with edge():
        from cloutsy.config import load_settings

        settings = load_settings()
    if not settings.embedded:
        raise Exit(
            "error: DATABASE_URL or POSTGRES_HOST is set: the db.start/stop/status tasks "
            "manage only the embedded server",
            code=1,
        )
    return settings.data_dir / "pgdata"


@task(name="start")
def db_start(c: Context) -> None:
    """Start the embedded PostgreSQL (creating its data directory on first use)."""
    pgdata = embedded_pgdata()
    with edge():
        from cloutsy import embedded

        was = embedded.postmaster(pgdata)
        embedded.server_uri(pgdata)
        info = embedded.postmaster(pgdata) or {}
    state = "already running" if was else "started"
    say(f"embedded PostgreSQL {state}: pid {info.get('pid', '?')}, socket in {info.get('socket')}")


@task(name="stop")
def db_stop(c: Context) -> None:
    """Stop the embedded PostgreSQL (by its postmaster pid, whatever pgserver recorded)."""
    pgdata = embedded_pgdata()
    with edge():
        from cloutsy import embedded

        stopped = embedded.ensure_stopped(pgdata)
    say("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@task(name="status")
def db_status(c: Context) -> None:
    """Show the embedded PostgreSQL: data dir, running pid, port and socket, version, size."""
    pgdata = embedded_pgdata()
    with edge():
        from cloutsy import embedded

        info = embedded.postmaster(pgdata)
        exists = (pgdata / "PG_VERSION").is_file()
        say(f"data dir: {pgdata}" + ("" if exists else " (not created yet: invoke db.start)"))
        if info:
            say(f"state:    running, pid {info['pid']}")
            say(f"socket:   {info['socket']}/.s.PGSQL.{info['port']} (port {info['port']})")
        else:
            say("state:    stopped")
        say(f"version:  PostgreSQL {embedded.version()}")
        if exists:
            say(f"size:     {embedded.size_bytes(pgdata) / 1_048_576:,.1f} MiB")


# --- load --------------------------------------------------------------------------------


@task(name="loadtest")
def loadtest(c: Context, users: str = "50", seconds: str = "60", url: str = "") -> None:
    """Drive the running service with a realistic mix (locust) and check its promises."""
    users_n = whole("--users", users, 1, 10_000)
    seconds_n = whole("--seconds", seconds, 1, 86_400)
    with edge():
        settings = boot()
        from cloutsy import loadtest as load

        target = url or f"http://{settings.host}:{settings.port}"
        report = load.run(target, users_n, seconds_n, progress=say)
        say(report.table())
        say(
            f"total: {report.requests} requests, {report.rps:.1f} req/s, "
            f"p50 {report.p50:.0f} ms, p95 {report.p95:.0f} ms, p99 {report.p99:.0f} ms, "
            f"{report.failures} failed ({report.server_errors} 5xx)"
        )
        limit = settings.workers * settings.pool_max
        say(
            f"PostgreSQL connections from the service: at most {report.max_connections} "
            f"(limit {limit} = {settings.workers} workers x pool {settings.pool_max})"
        )
        say(
            f"acknowledged sign-ups read back: {report.acknowledged - report.unreadable}"
            f"/{report.acknowledged}"
        )
        problems = []
        if report.server_errors:
            problems.append(f"{report.server_errors} server errors")
        if report.unreadable:
            problems.append(f"{report.unreadable} acknowledged sign-ups not readable")
        if report.max_connections > limit:
            problems.append(f"{report.max_connections} connections > {limit}")
        if report.requests == 0:
            problems.append("no request was made (is the service running?)")
        if problems:
            raise Exit("load test failed: " + "; ".join(problems), code=1)


# --- tests -------------------------------------------------------------------------------


@task(name="test")
def run_tests(c: Context, args: str = "", fast: bool = False) -> None:
    """ruff, mypy on the package, squawk on the migrations, then the tests (--fast skips slow)."""
    lint = c.run(f"{sys.executable} -m ruff check {ROOT}", warn=True)
    if lint is None or lint.exited != 0:
        raise Exit("ruff found problems (run: ruff check --fix .)", code=1)
    style = c.run(f"{sys.executable} -m ruff format --check {ROOT}", warn=True, hide="out")
    if style is None or style.exited != 0:
        raise Exit("files are not formatted (run: ruff format .)", code=1)
    types = c.run(f"{sys.executable} -m mypy", warn=True)
    if types is None or types.exited != 0:
        raise Exit("mypy found type errors", code=1)
    migrate_lint(c)  # squawk on every migration's rendered SQL
    marker = ' -m "not slow"' if fast else ""
    result = c.run(f"{sys.executable} -m pytest{marker} {args}", pty=False, warn=True)
    if result is None or result.exited != 0:
        raise Exit(f"tests failed (exit {getattr(result, 'exited', '?')})", code=1)


# --- benchmark ---------------------------------------------------------------------------


@task(
    name="bench",
    help={
        "rounds": "repeat the whole comparison N times and report medians",
        "duration": "seconds of measured load per endpoint (after a 3 s warm-up)",
        "scale": "also check 1,000,000 influencers: list p50, page 500, q search",
        "writes": "measure sign-ups too (on by default; --no-writes skips them)",
        "fresh": "re-seed the bench databases even when their row counts match",
        "drop": "drop the bench databases afterwards instead of keeping them for the next run",
        "unprepared": "also read with POSTGRES_PREPARED_STATEMENTS=false (on by default)",
        "pg15": "also measure on a throwaway Debian PostgreSQL 15 cluster (on by default; "
        "--no-pg15 skips it; postgresql-15 is installed with apt-get when missing)",
    },
)
def bench(
    c: Context,
    rounds: str = "1",
    duration: str = "10",
    scale: bool = False,
    writes: bool = True,
    fresh: bool = False,
    drop: bool = False,
    unprepared: bool = True,
    pg15: bool = True,
) -> None:
    """Measure the service against a hand-written psycopg2 baseline under wrk."""
    rounds_n = whole("--rounds", rounds, 1, 100)
    duration_n = whole("--duration", duration, 1, 3600)
    with edge():
        from cloutsy.bench.runner import Options, run
        from cloutsy.config import load_settings

        options = Options(
            rounds=rounds_n,
            duration=duration_n,
            scale=scale,
            writes=writes,
            fresh=fresh,
            drop=drop,
            unprepared=unprepared,
            pg15=pg15,
        )
        say(run(load_settings(), options, say).render())


# --- notebooks ---------------------------------------------------------------------------


@task(name="notebooks")
def notebooks(c: Context) -> None:
    """Execute every notebook headless against the configured database; HTML reports to reports/."""
    with edge():
        auto_sync(boot())  # as the migrator; the notebooks' kernels read as the analyst
        from cloutsy.reports import run_notebooks

        def show(name: str, done: int, total: int) -> None:
            if done < total:
                say(f"[{done + 1}/{total}] running {name}")

        paths = run_notebooks(ROOT / "notebooks", ROOT / "reports", progress=show)
        for path in paths:
            say(f"report written: {os.path.relpath(path, ROOT)}")


# --- data protection (CONTRACT §9) ---------------------------------------------------------


@task(name="roles")
def db_roles(c: Context) -> None:
    """Create or update the least-privilege roles (idempotent; needs owner/superuser rights)."""
    with edge():
        from cloutsy import roles
        from cloutsy.config import load_settings
        from cloutsy.db import connect_params, connection_url

        settings = load_settings()
        url = connection_url(settings, "admin")
        database = connect_params(url, settings)["database"]
        urls = (
            settings.external_url(),
            settings.migration_database_url,
            settings.analytics_database_url,
        )
        roles.ensure_on(url, database, settings, urls)
        say(
            f"roles on {database}: {roles.OWNER} (owns the schema), {roles.MIGRATOR} "
            f"(migrations), {roles.APP} (the service), {roles.ANALYST} (notebooks)"
        )


@task(name="generate")
def keys_generate(c: Context, key_id: str = "") -> None:
    """Print a new data key `id:base64` to put first in CLOUTSY_DATA_KEYS (--key-id to name it)."""
    from cloutsy import keys
    from cloutsy.config import KEY_ID

    if key_id and not KEY_ID.match(key_id):
        raise Exit("error: --key-id must be 1-16 of A-Za-z0-9_-", code=1)
    say(keys.generate(key_id))


@task(name="rotate")
def keys_rotate(c: Context, batch: str = "1000") -> None:
    """Re-encrypt every PII value under the first key of CLOUTSY_DATA_KEYS, in batches."""
    batch_n = whole("--batch", batch, minimum=1)
    with edge():
        boot()
        from cloutsy import crypto, keys

        changed = keys.rotate(batch_n, progress_bar)
        say(f"re-encrypted {changed:,} rows under key {crypto.keyring().current_id}")


@task(name="status")
def keys_status(c: Context) -> None:
    """Count stored PII values per key id (a key with none left can be dropped)."""
    with edge():
        boot()
        from cloutsy import keys

        for table, counts in keys.status().items():
            listed = ", ".join(f"{key}: {n:,}" for key, n in counts.items()) or "no values"
            say(f"{table}: {listed}")


@task(name="erase")
def accounts_erase(c: Context, kind: str, id: str) -> None:  # noqa: A002 - the contract's word
    """Erase account KIND (influencer or brand) ID: PII gone, identifiers free (one transaction)."""
    account_id = whole("ID", id, minimum=1)
    with edge():
        boot(purpose="app")
        from cloutsy.db import database
        from cloutsy.kinds import KINDS
        from cloutsy.services import accounts

        if kind not in KINDS:
            raise Exit("error: KIND must be influencer or brand", code=1)
        with database.connection_context():
            accounts.erase(KINDS[kind], account_id)
        say(f"{kind} {account_id} erased")


migrate = Collection(
    "migrate", migrate_apply, migrate_status, migrate_rollback, migrate_create, migrate_lint
)
seed = Collection("seed", seed_niches, seed_demo_data)
db = Collection(
    "db",
    db_backup,
    db_restore,
    db_verify,
    db_purge,
    db_start,
    db_stop,
    db_status,
    db_roles,
)
keys = Collection("keys", keys_generate, keys_rotate, keys_status)
accounts = Collection("accounts", accounts_erase)

ns = Collection(migrate, seed, db, keys, accounts, run_tests, serve, bench, notebooks, loadtest)
