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

ROOT = Path(__file__).resolve().parent


@contextmanager
def edge() -> Iterator[None]:
    """Turn the package's errors into a one-line `Exit`."""
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


def boot(wait: float = 15.0):  # noqa: ANN201 - returns Settings; imported lazily
    """Read settings, set up logging, open the pool and wait for the database."""
    from cloutsy.config import load_settings, warn_if_insecure
    from cloutsy.db import init_database, wait_for_database
    from cloutsy.logs import configure_logging

    settings = load_settings()
    configure_logging(settings, query_log=False)
    warn_if_insecure(settings)
    init_database(settings)
    wait_for_database(timeout=wait)
    return settings


def say(message: str) -> None:
    print(message, flush=True)


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


@task(name="serve")
def serve(c: Context, host: str = "", port: int = 0, workers: int = 0) -> None:
    """Serve the API with granian (development: apply migrations and seed niches first)."""
    with edge():
        settings = boot(wait=30)
        from cloutsy.db import close_database

        auto_sync(settings)
        close_database()
    env = dict(os.environ)
    if host:
        env["CLOUTSY_HOST"] = host
    if port:
        env["CLOUTSY_PORT"] = str(port)
    if workers:
        env["CLOUTSY_WORKERS"] = str(workers)
    with edge():
        from cloutsy.config import load_settings
        from cloutsy.serving import metrics_dir, server_argv

        settings = load_settings(env)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
        argv = server_argv(settings)
    say(
        f"serving on http://{settings.host}:{settings.port} ({settings.env}, "
        f"{settings.workers} workers)"
    )
    sys.stdout.flush()
    # Replace this process: SIGTERM then reaches the server directly.
    os.execve(sys.executable, argv, env)


# --- migrations --------------------------------------------------------------------------


@task(name="apply", default=True)
def migrate_apply(c: Context, target: str = "") -> None:
    """Apply pending migrations (up to --target)."""
    with edge():
        boot()
        from cloutsy import migrations
        from cloutsy.db import database

        with database.connection_context():
            applied = migrations.apply(target or None)
        say("\n".join(f"applied: {name}" for name in applied) or "nothing to apply")


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


@task(name="rollback")
def migrate_rollback(c: Context, target: str = "", all: bool = False) -> None:  # noqa: A002
    """Revert the latest migration (or back through --target, or --all)."""
    with edge():
        boot()
        from cloutsy import migrations
        from cloutsy.db import database

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
    influencers: int = 10_000,
    brands: int = 1_000,
    days: int = 365,
    random_seed: int = 42,
    append: bool = False,
) -> None:
    """Fill the database with realistic demo accounts for the notebooks (--append to add more)."""
    import time

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
            result = demo.seed_demo(influencers, brands, days, random_seed, progress_bar)
        say(
            f"demo data: {result.influencers:,} influencers ({result.influencer_niches:,} niche "
            f"links), {result.brands:,} brands ({result.brand_niches:,} niche links) "
            f"in {time.perf_counter() - started:.1f} s"
        )


# --- backups -----------------------------------------------------------------------------


@task(name="backup")
def db_backup(c: Context) -> None:
    """pg_dump the configured database to backups/ (custom format, timestamped)."""
    with edge():
        settings = boot()
        from cloutsy.backup import backup

        path = backup(settings)
        say(f"backup written: {os.path.relpath(path, ROOT)} ({path.stat().st_size:,} bytes)")


@task(name="restore")
def db_restore(c: Context, file: str, yes: bool = False) -> None:
    """Restore a backup FILE into the configured database (asks first; --yes skips)."""
    with edge():
        path = Path(file)
        if not path.is_file():
            raise Exit(f"error: no such backup file: {file}", code=1)
        settings = boot()
        from cloutsy.backup import restore

        if not yes:
            if not sys.stdin.isatty():
                raise Exit("error: refusing to restore without --yes (no terminal to ask)", code=1)
            answer = input(f"Replace the contents of the configured database with {file}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise Exit("restore cancelled", code=1)
        restore(settings, path)
        say(f"restored {file}")


# --- load --------------------------------------------------------------------------------


@task(name="loadtest")
def loadtest(c: Context, users: int = 50, seconds: int = 60, url: str = "") -> None:
    """Drive the running service with a realistic mix (locust) and check its promises."""
    with edge():
        settings = boot()
        from cloutsy import loadtest as load

        target = url or f"http://{settings.host}:{settings.port}"
        if users < 1 or seconds < 1:
            raise Exit("error: --users and --seconds must be positive", code=1)
        try:
            report = load.run(target, users, seconds, progress=say)
        except RuntimeError as exc:
            raise Exit(f"error: {exc}", code=1) from None
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
    """ruff, mypy on the core, then the whole test suite (--fast skips the slow tests)."""
    lint = c.run(f"{sys.executable} -m ruff check {ROOT}", warn=True)
    if lint is None or lint.exited != 0:
        raise Exit("ruff found problems (run: ruff check --fix .)", code=1)
    style = c.run(f"{sys.executable} -m ruff format --check {ROOT}", warn=True, hide="out")
    if style is None or style.exited != 0:
        raise Exit("files are not formatted (run: ruff format .)", code=1)
    types = c.run(f"{sys.executable} -m mypy", warn=True)
    if types is None or types.exited != 0:
        raise Exit("mypy found type errors in the core", code=1)
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
        "pg15": "also measure on a throwaway Debian PostgreSQL 15 cluster (on by default; "
        "--no-pg15 skips it; postgresql-15 is installed with apt-get when missing)",
    },
)
def bench(
    c: Context,
    rounds: int = 1,
    duration: int = 10,
    scale: bool = False,
    writes: bool = True,
    fresh: bool = False,
    drop: bool = False,
    pg15: bool = True,
) -> None:
    """Measure the service against a hand-written psycopg2 baseline under wrk."""
    with edge():
        from cloutsy.bench.runner import Options, run
        from cloutsy.config import load_settings

        options = Options(
            rounds=rounds,
            duration=duration,
            scale=scale,
            writes=writes,
            fresh=fresh,
            drop=drop,
            pg15=pg15,
        )
        say(run(load_settings(), options, say).render())


# --- notebooks ---------------------------------------------------------------------------


@task(name="notebooks")
def notebooks(c: Context) -> None:
    """Execute every notebook headless against the configured database; HTML reports to reports/."""
    with edge():
        auto_sync(boot())
        from cloutsy.reports import NotebookFailed, run_notebooks

        def show(name: str, done: int, total: int) -> None:
            if done < total:
                say(f"[{done + 1}/{total}] running {name}")

        try:
            paths = run_notebooks(ROOT / "notebooks", ROOT / "reports", progress=show)
        except NotebookFailed as exc:
            raise Exit(f"error: {exc}", code=1) from None
        for path in paths:
            say(f"report written: {os.path.relpath(path, ROOT)}")


migrate = Collection("migrate", migrate_apply, migrate_status, migrate_rollback, migrate_create)
seed = Collection("seed", seed_niches, seed_demo_data)
db = Collection("db", db_backup, db_restore)

ns = Collection(migrate, seed, db, run_tests, serve, bench, notebooks, loadtest)
