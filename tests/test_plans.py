"""Every list shape is an index walk that stops after the page, on every PostgreSQL we support.

Issue 14: PostgreSQL 15 planned the one-niche page as a bitmap scan of every link of the
niche plus a sort, where 16 walked the index and stopped after 21 rows. Here each list
statement is prepared exactly as the service prepares it (`queries._list_sql`), on the
embedded 16 and on a throwaway Debian 15 cluster, with data shaped like the bench's
(niche popularity falling off as rank^-0.9), and its generic and custom plans are read:
no sequential scan of an account or link table, no bitmap scan of a link table, no
sort except of the capped set of text-search hits, and no scan of a whole table or
index except one a LIMIT stops (a walk through nested loops only).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pytest
from peewee import PostgresqlDatabase
from playhouse.migrations import Runner

from cloutsy import embedded, queries
from cloutsy.catalogue import NICHES
from cloutsy.clusters import Cluster
from cloutsy.config import load_settings
from cloutsy.kinds import BRAND, INFLUENCER, KINDS, AccountKind
from cloutsy.migrations import MIGRATIONS_DIR

pytestmark = pytest.mark.slow

INFLUENCERS = 60_000
BRANDS = 8_000
ACCOUNT_TABLES = {kind.table for kind in KINDS.values()}
LINK_TABLES = {kind.link_table for kind in KINDS.values()}
# The accounts' ready niche JSON (migration 0006): one row per account, read by key.
REFS_TABLES = {kind.refs_table for kind in KINDS.values()}
BIG_TABLES = ACCOUNT_TABLES | LINK_TABLES | REFS_TABLES

# Names with common words (for `q`), 70 % verified, 2 % inactive; 1-4 niches each, drawn
# from a rank^-0.9 popularity (the first niche of the catalogue is the most popular).
DATA = """
SELECT setseed(0.14);
INSERT INTO influencers (name, username, email, phone, bio, is_phone_verified, is_active,
                         created_at)
SELECT (ARRAY['asha','ravi','meera','kiran','arjun','priya','rahul','neha','vikram','anita'])
           [1 + i %% 10] || ' ' ||
       (ARRAY['sharma','patel','singh','rao','iyer','khan','das','gupta','nair','bose'])
           [1 + (i / 10) %% 10],
       'user' || i, 'user' || i || '@example.com', '+9198' || lpad(i::text, 8, '0'),
       CASE i %% 3 WHEN 0 THEN 'travel and food stories' WHEN 1 THEN 'fitness coach' END,
       i %% 10 < 7, i %% 50 <> 0, now() - make_interval(secs => %(n)s - i)
  FROM generate_series(1, %(n)s) i;
INSERT INTO brands (email, password, phone, brand_name, username, brand_bio,
                    is_phone_verified, is_active, created_at)
SELECT 'brand' || i || '@example.com', 'x', '+9197' || lpad(i::text, 8, '0'),
       (ARRAY['acme','globex','initech','umbrella','hooli'])[1 + i %% 5] || ' ' || i,
       'brand' || i, 'we make things', i %% 10 < 6, i %% 50 <> 0,
       now() - make_interval(secs => %(b)s - i)
  FROM generate_series(1, %(b)s) i;
CREATE TEMP TABLE cdf AS
SELECT id, sum(w) OVER (ORDER BY r) / sum(w) OVER () AS hi
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS r,
               1.0 / (row_number() OVER (ORDER BY id))::float8 ^ 0.9 AS w FROM niches) n;
INSERT INTO influencer_niches (influencer_id, niche_id)
SELECT DISTINCT i, (SELECT c.id FROM cdf c WHERE c.hi >= x.r ORDER BY c.hi LIMIT 1)
  FROM generate_series(1, %(n)s) i CROSS JOIN LATERAL generate_series(1, 1 + i %% 4) j
 CROSS JOIN LATERAL (SELECT random() + 0 * i + 0 * j AS r) x
ON CONFLICT DO NOTHING;
INSERT INTO brand_niches (brand_id, niche_id)
SELECT DISTINCT i, (SELECT c.id FROM cdf c WHERE c.hi >= x.r ORDER BY c.hi LIMIT 1)
  FROM generate_series(1, %(b)s) i CROSS JOIN LATERAL generate_series(1, 1 + i %% 3) j
 CROSS JOIN LATERAL (SELECT random() + 0 * i + 0 * j AS r) x
ON CONFLICT DO NOTHING;
ANALYZE;
"""


def build(dsn: str) -> None:
    """Migrate the empty database at `dsn` and fill it with the skewed data above."""
    url = urlparse(dsn)
    db = PostgresqlDatabase(
        url.path.lstrip("/"),
        user=url.username,
        host=url.hostname or dict(p.split("=") for p in url.query.split("&"))["host"],
        port=url.port,
    )
    db.connect()
    try:
        Runner(db, str(MIGRATIONS_DIR)).up()
        with db.atomic():
            for name, slug, icon, description in NICHES:
                db.execute_sql(
                    "INSERT INTO niches (name, slug, icon, description) VALUES (%s, %s, %s, %s)",
                    (name, slug, icon, description),
                )
            db.execute_sql(DATA, {"n": INFLUENCERS, "b": BRANDS})
    finally:
        db.close()


def _embedded_16() -> Iterator[str]:
    settings = load_settings()
    admin = embedded.server_uri(settings.data_dir / "pgdata", "postgres")
    name = "cloutsy_plans"
    embedded.drop_database(admin, name)
    embedded.ensure_database(admin, name)
    try:
        dsn = embedded.server_uri(settings.data_dir / "pgdata", name)
        build(dsn)
        yield dsn
    finally:
        embedded.drop_database(admin, name)


def _debian_15() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="cloutsy-pg15-"))
    try:
        # Durability traded for speed: the plans, not the data, are under test.
        fast = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        with Cluster.create(base / "pgdata", 15, lambda _: None, **fast) as cluster:
            build(cluster.url())
            yield cluster.url()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["16", "15"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """(major version, open connection) of a server holding the skewed data."""
    source = _embedded_16() if request.param == "16" else _debian_15()
    dsn = next(source)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert int(cur.fetchone()[0]) // 10000 == int(request.param)
        yield request.param, conn
    finally:
        conn.close()
        source.close()


# --- reading a plan ------------------------------------------------------------------------

# Between a LIMIT and a scan of a whole table or index, only these keep the scan lazy:
# rows flow up one at a time and the LIMIT stops the scan.
STREAMING = {"Limit", "Nested Loop", "Subquery Scan", "Result", "Memoize", "Append"}


def _subtree(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _subtree(child)


def _capped_hits(node: dict[str, Any]) -> bool:
    """True inside the text search's capped `hits` CTE or over a scan of it."""
    return node.get("Subplan Name") == "CTE hits" or any(
        n.get("Node Type") == "CTE Scan" and n.get("CTE Name") == "hits" for n in _subtree(node)
    )


def _one_accounts_links(node: dict[str, Any]) -> bool:
    """True when every account or link table below is read for one account (its niches).

    Also true when none is read at all: a sort of the niche catalogue's few rows.
    """
    scans = [n for n in _subtree(node) if n.get("Relation Name") in ACCOUNT_TABLES | LINK_TABLES]
    return all(
        "niche_id" not in n.get("Index Cond", "niche_id") and ".id)" in n["Index Cond"]
        for n in scans
    )


def offences(node: dict[str, Any], path: tuple[dict[str, Any], ...] = ()) -> list[str]:
    """What makes a plan read more than a page: one line per offending node."""
    found: list[str] = []
    kind = node["Node Type"]
    table = node.get("Relation Name")
    capped = any(n.get("Subplan Name") == "CTE hits" for n in (*path, node))
    big = table in BIG_TABLES
    if kind == "Seq Scan" and big:
        found.append(f"sequential scan of {table}")
    if kind == "Bitmap Heap Scan" and (table in LINK_TABLES or (big and not capped)):
        found.append(f"bitmap scan of {table} (every match, unordered)")
    if kind in ("Sort", "Incremental Sort") and not (
        capped or _capped_hits(node) or _one_accounts_links(node)
    ):
        found.append(f"sort by {node.get('Sort Key')}")
    if kind in ("Merge Join", "Hash Join") and any(
        n.get("Relation Name") in BIG_TABLES
        and ("Index Cond" not in n or "niche_id" in n["Index Cond"])
        for n in _subtree(node)
        if n is not node
    ):
        found.append(f"{kind.lower()} over a whole account or link table")
    if kind in ("Index Scan", "Index Only Scan") and big and "Index Cond" not in node:
        # A whole-index walk is fine only when a LIMIT above stops it.
        chain = []
        for parent in reversed(path):
            chain.append(parent["Node Type"])
            if parent["Node Type"] == "Limit":
                break
        if not chain or chain[-1] != "Limit" or set(chain) - STREAMING:
            found.append(f"whole-index scan of {table} that no LIMIT stops ({' < '.join(chain)})")
    for child in node.get("Plans", []):
        found += offences(child, (*path, node))
    return found


def test_offences_catch_the_plans_issue_14_found() -> None:
    """The checker itself: PostgreSQL 15's one-niche plan, a seq scan and a plain walk."""
    link_bitmap = {
        "Node Type": "Limit",
        "Plans": [
            {
                "Node Type": "Sort",
                "Sort Key": ["l.influencer_id DESC"],
                "Plans": [{"Node Type": "Bitmap Heap Scan", "Relation Name": "influencer_niches"}],
            }
        ],
    }
    assert sorted(offences(link_bitmap)) == [
        "bitmap scan of influencer_niches (every match, unordered)",
        "sort by ['l.influencer_id DESC']",
    ]
    assert offences({"Node Type": "Seq Scan", "Relation Name": "brands"}) == [
        "sequential scan of brands"
    ]
    assert offences({"Node Type": "Seq Scan", "Relation Name": "influencer_niche_refs"}) == [
        "sequential scan of influencer_niche_refs"
    ]
    merge = {
        "Node Type": "Limit",
        "Plans": [
            {
                "Node Type": "Merge Join",
                "Plans": [
                    {"Node Type": "Index Scan", "Relation Name": "influencers"},
                    {"Node Type": "Index Only Scan", "Relation Name": "influencer_niches"},
                ],
            }
        ],
    }
    assert "merge join over a whole account or link table" in offences(merge)
    walk = {
        "Node Type": "Limit",
        "Plans": [
            {
                "Node Type": "Nested Loop",
                "Plans": [
                    {"Node Type": "Index Scan", "Relation Name": "influencers"},
                    {
                        "Node Type": "Index Scan",
                        "Relation Name": "influencer_niches",
                        "Index Cond": "(influencer_id = a.id)",
                    },
                ],
            }
        ],
    }
    assert offences(walk) == []


# --- the shapes ----------------------------------------------------------------------------

SHAPES = [
    (niches, search, verified, after)
    for niches in (0, 1, 2)
    for search in (False, True)
    for verified in (False, True)
    for after in (False, True)
]


def _shape_id(shape: tuple[int, bool, bool, bool]) -> str:
    niches, search, verified, after = shape
    parts = [("no niche", "one niche", "several niches")[niches]]
    parts += ["q"] if search else []
    parts += ["verified"] if verified else []
    parts += ["cursor"] if after else []
    return "+".join(parts)


def _values(conn: Any, kind: AccountKind, niches: int) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT n.slug FROM niches n JOIN {kind.link_table} l ON l.niche_id = n.id "
            "GROUP BY n.slug ORDER BY count(*) DESC"
        )
        slugs = [r[0] for r in cur.fetchall()]
        cur.execute(f"SELECT max(id) / 2 FROM {kind.table}")
        middle = cur.fetchone()[0]
    word = "asha:*" if kind is INFLUENCER else "acme:*"
    chosen = slugs[:1] if niches == 1 else [slugs[0], slugs[-1]]  # most and least popular
    return {
        "after": middle,
        "verified": True,
        "slugs": chosen,
        "ids": [],
        "tsquery": word,
        "limit": 21,
    }


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
@pytest.mark.parametrize("kind", [INFLUENCER, BRAND], ids=lambda k: k.table)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_list_plans_are_walks_that_stop(
    server: tuple[str, Any], kind: AccountKind, shape: tuple[int, bool, bool, bool], mode: str
) -> None:
    version, conn = server
    name, sql, names = queries._list_sql(kind, *shape)
    values = _values(conn, kind, shape[0])
    with conn.cursor() as cur:
        cur.execute(f"SET plan_cache_mode = {mode}")
        cur.execute(f"DEALLOCATE ALL; PREPARE {name} AS {sql}")
        placeholders = ", ".join(["%s"] * len(names))
        cur.execute(
            f"EXPLAIN (FORMAT JSON) EXECUTE {name}({placeholders})", [values[n] for n in names]
        )
        raw = cur.fetchone()[0]
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        # The statement still answers: a full page of the walk's rows, newest first.
        cur.execute(f"EXECUTE {name}({placeholders})", [values[n] for n in names])
        ids = [r[0] for r in cur.fetchall()]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == values["limit"], f"{_shape_id(shape)} found {len(ids)} rows"
    problems = offences(plan)
    assert not problems, f"PostgreSQL {version}, {mode}, {_shape_id(shape)}: {problems}"
