"""The bench's data: a seeded database per server and the requests drawn from it.

Seeding is `seed.demo` with a fixed random seed, so a database holding the same row
counts holds the same data and is reused (`cloutsy_bench_<influencers>`). The workload
samples existing ids, niches with a full first page and names to search for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

from cloutsy.bench import BenchError
from cloutsy.config import Settings
from cloutsy.progress import Say


@dataclass(frozen=True)
class Dataset:
    """A seeded bench database and how each process reaches it."""

    name: str
    dsn: str  # psycopg2 DSN of the bench database
    settings: Settings  # settings pointing at it (embedded or external server)
    influencers: int
    brands: int

    @property
    def app_dsn(self) -> str:
        """The dataset's URL as `cloutsy_app` (trust on the bench servers: no password)."""
        from cloutsy import roles
        from cloutsy.db import with_user

        return with_user(self.dsn, roles.APP)


def _with_database(url: str, name: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path="/" + quote(name)))


def dataset_settings(settings: Settings, name: str) -> tuple[Settings, str, str]:
    """(settings, DSN, admin DSN) for database `name` on the configured server."""
    from cloutsy import embedded

    if settings.embedded:
        pgdata = settings.data_dir / "pgdata"
        return (
            settings.with_overrides(postgres_db=name),
            embedded.server_uri(pgdata, name),
            embedded.server_uri(pgdata, "postgres"),
        )
    url = settings.external_url() or ""
    dsn = _with_database(url, name)
    return settings.with_overrides(database_url=dsn), dsn, _with_database(url, "postgres")


@contextlib.contextmanager
def cursor(dsn: str) -> Iterator[Any]:
    """A psycopg2 cursor on `dsn` in autocommit, its connection closed after the block."""
    import psycopg2

    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def counts(dsn: str) -> tuple[int, int] | None:
    """(influencers, brands) in a migrated bench database, None when it is not one."""
    with cursor(dsn) as cur:
        cur.execute("SELECT to_regclass('influencers') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        forget_writes(cur)
        cur.execute("SELECT (SELECT count(*) FROM influencers), (SELECT count(*) FROM brands)")
        influencers, brands = cur.fetchone()
        return int(influencers), int(brands)


def forget_writes(cur: Any) -> None:
    """Delete the accounts the write runs signed up (their links cascade)."""
    # By name, as signup.lua writes them: emails are ciphertext (CONTRACT §9).
    cur.execute("DELETE FROM influencers WHERE name LIKE 'Bench Influencer %%'")
    cur.execute("DELETE FROM brands WHERE brand_name LIKE 'Bench Brand %%'")


def prepare_dataset(
    settings: Settings,
    influencers: int,
    brands: int,
    progress: Say,
    fresh: bool = False,
    days: int = 365,
) -> Dataset:
    """A database `cloutsy_bench_<influencers>` seeded with seed.demo, reused when it matches.

    Seeding is deterministic (random_seed=42), so a database holding the same
    row counts holds the same data and the next run skips the ~15 s of seeding.
    """
    from cloutsy import catalogue, embedded, migrations, roles
    from cloutsy.db import close_database, database, init_database
    from cloutsy.demo import seed_demo

    name = f"cloutsy_bench_{influencers}"
    bench_settings, dsn, admin = dataset_settings(settings, name)
    embedded.ensure_database(admin, name)
    dataset = Dataset(name, dsn, bench_settings, influencers, brands)
    if not fresh and counts(dsn) == (influencers, brands):
        progress(f"dataset {name}: reusing {influencers:,} influencers, {brands:,} brands")
        # A database kept from an earlier run may predate a migration: the service in
        # production mode would answer 503 (pending migrations) until it is applied.
        init_database(bench_settings.with_overrides(statement_timeout_ms=0), url=dsn)
        try:
            with database.connection_context():
                applied = migrations.apply()
        finally:
            close_database()
        if applied:
            progress(f"dataset {name}: applied {', '.join(applied)}")
        roles.ensure_on(dsn, name, bench_settings, ())
        return dataset

    progress(f"dataset {name}: seeding {influencers:,} influencers, {brands:,} brands ...")
    embedded.drop_database(admin, name)
    embedded.ensure_database(admin, name)
    started = time.monotonic()
    # Bulk loads and index builds outlast the service's 5 s statement timeout.
    init_database(bench_settings.with_overrides(statement_timeout_ms=0), url=dsn)
    try:
        with database.connection_context():
            migrations.apply()
            catalogue.seed_niches()
        seed_demo(influencers, brands, days, random_seed=42, progress=_stages(progress))
        with database.connection_context():
            database.execute_sql("ANALYZE")
    finally:
        close_database()
    roles.ensure_on(dsn, name, bench_settings, ())  # the service serves as cloutsy_app
    progress(f"dataset {name}: seeded in {time.monotonic() - started:.0f} s")
    return dataset


def _stages(progress: Say) -> Callable[[str, int, int], None]:
    """seed_demo's (stage, done, total) reports as one line per finished stage."""

    def report(stage: str, done: int, total: int) -> None:
        if done >= total:
            progress(f"  {stage}: {total:,}")

    return report


@dataclass(frozen=True)
class Workload:
    """The request paths the load scripts draw from, read once from the dataset."""

    by_id: list[str]  # /influencers/<active id>
    by_niche: list[str]  # first page of each niche with a full page
    sample: list[str]  # what the JSON check compares: ids, inactive, missing, pages
    slugs: list[str]  # niches by popularity, most popular first
    niche_ids: list[int]
    search_terms: list[str]


def workload(dsn: str, ids: int = 10_000, sample: int = 200) -> Workload:
    """Random existing active ids, niches with a full first page, words for `q`."""
    with cursor(dsn) as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute("SELECT id FROM influencers WHERE is_active ORDER BY random() LIMIT %s", (ids,))
        active = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT id FROM influencers WHERE NOT is_active ORDER BY id LIMIT 5")
        inactive = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT coalesce(max(id), 0) FROM influencers")
        missing = cur.fetchone()[0] + 1000
        cur.execute(
            "SELECT n.slug, n.id FROM niches n JOIN influencer_niches l ON l.niche_id = n.id "
            "JOIN influencers i ON i.id = l.influencer_id WHERE i.is_active AND n.is_active "
            "GROUP BY n.id HAVING count(*) >= 20 ORDER BY count(*) DESC, n.id"
        )
        niches = cur.fetchall()
        cur.execute("SELECT name FROM influencers WHERE is_active ORDER BY random() LIMIT 300")
        names = [r[0].lower() for r in cur.fetchall()]
    if not active or not niches:
        raise BenchError("the bench database has no active influencers in any niche")
    pages = [f"/influencers?niche={slug}&limit=20" for slug, _ in niches]
    sample_paths = [f"/influencers/{i}" for i in [*active[:sample], *inactive, missing]]
    return Workload(
        by_id=[f"/influencers/{i}" for i in active],
        by_niche=pages,
        sample=sample_paths + pages,
        slugs=[slug for slug, _ in niches],
        niche_ids=[nid for _, nid in niches],
        search_terms=_search_terms(names),
    )


def _search_terms(names: Sequence[str], full_names: int = 50) -> list[str]:
    """What people type into `q`: single first or last names, and some full names."""
    words = sorted({w for n in names for w in n.split() if len(w) >= 3 and w.isalpha()})
    return words + list(names[:full_names])


def drop(settings: Settings, names: Sequence[str]) -> None:
    """Drop the bench databases `names` (`invoke bench --drop`)."""
    from cloutsy import embedded

    for name in names:
        _, _, admin = dataset_settings(settings, name)
        embedded.drop_database(admin, name)
