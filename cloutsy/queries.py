"""The read side: each public read is ONE SQL statement whose JSON PostgreSQL builds itself.

Why raw SQL here when the rest uses peewee: a read endpoint is one round trip, and the
body goes from the database to the client without being parsed or re-encoded in
Python (issue 6: twice the throughput of a hand-written psycopg2 app). The SQL text
for each combination of filters is built once and cached; values are always bound
parameters. The views' columns are the registry's (`cloutsy.kinds`), read from the
response schemas that document them for OpenAPI (CONTRACT §5).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson
from pydantic.alias_generators import to_camel

from cloutsy import crypto, replicas
from cloutsy.db import database
from cloutsy.kinds import BRAND, INFLUENCER, AccountKind
from cloutsy.list_query import ListQuery, encode_cursor
from cloutsy.schemas import positive_id


def _fields(alias: str, columns: Sequence[str]) -> list[str]:
    # The schemas' own alias rule, so the JSON keys are the documented ones.
    return [f'{alias}.{c} AS "{to_camel(c)}"' for c in columns]


def json_object(fields: Sequence[str]) -> str:
    """A JSON object of `fields` (`expr AS "key"`), written compactly.

    row_to_json writes no spaces (json_build_object and json_agg write `" : "` and `", "`),
    so a body goes to the client exactly as PostgreSQL wrote it, with no re-encoding in
    Python (issue 14); it also builds ~8% faster than json_build_object (a page, measured).
    """
    return f"(SELECT row_to_json(v) FROM (SELECT {', '.join(fields)}) v)"


def _niches_json(kind: AccountKind, alias: str) -> str:
    # Ready JSON kept by the writes (migrations/0006): building it per read cost a niche
    # lookup and a row_to_json per link, half of a page's database time (issue 14).
    return (
        f"coalesce((SELECT r.niches FROM {kind.refs_table} r "
        f"WHERE r.{kind.link_column} = {alias}.id), '[]'::json)"
    )


def _view(kind: AccountKind, alias: str, private: bool) -> str:
    """The public or private view of `alias` as compact JSON (kinds: the columns)."""
    fields = _fields(alias, kind.private_columns if private else kind.public_columns)
    if private:  # the account's own phone change waiting for its code (CONTRACT §6)
        fields.append(
            "(SELECT c.phone FROM phone_changes c WHERE "
            f"c.subject_type = '{kind.name}' AND c.subject_id = {alias}.id) AS \"pendingPhone\""
        )
    fields.append(f'{_niches_json(kind, alias)} AS "niches"')
    return json_object(fields)


# --- detail ------------------------------------------------------------------------------


@cache
def _detail_sql(kind: AccountKind, private: bool) -> tuple[str, str]:
    view = _view(kind, "a", private)
    name = f"{kind.table}_{'private' if private else 'public'}"
    return name, f"SELECT {view}::text FROM {kind.table} a WHERE a.id = $1 AND a.is_active"


def account_json(kind: AccountKind, account_id: int, private: bool = False) -> str | None:
    """One active account's view as JSON text, or None.

    The public view comes from PostgreSQL untouched (it holds no PII); the private view
    carries ciphertext out of its one statement and is decrypted here, in the service.
    """
    name, sql = _detail_sql(kind, private)
    if not private:  # the public view holds no PII: a replica may answer (CONTRACT §10)
        row = replicas.read(lambda db: db.execute_prepared(name, sql, (account_id,)).fetchone())
        return row[0] if row else None
    # A private view is read where it was written (the primary) and decrypted here.
    row = database.execute_prepared(name, sql, (account_id,)).fetchone()
    if row is None:
        return None
    view = crypto.reveal(kind.table, kind.private_pii, orjson.loads(row[0]))
    crypto.reveal("phone_changes", {"pendingPhone": "phone"}, view)
    return orjson.dumps(view).decode()


def get_influencer(influencer_id: int, private: bool = False) -> dict[str, Any] | None:
    """One active influencer's view as a dict (analytics, tests), or None."""
    text = account_json(INFLUENCER, influencer_id, private)
    return json.loads(text) if text else None


def get_brand(brand_id: int, private: bool = False) -> dict[str, Any] | None:
    """One active brand's view as a dict (analytics, tests), or None."""
    text = account_json(BRAND, brand_id, private)
    return json.loads(text) if text else None


# --- lists -------------------------------------------------------------------------------


# Above this many matches a word is common: walking ids backwards finds a page sooner.
SEARCH_HITS_CAP = 5000
# The most rows any page reads: the largest `limit` plus the row that says "there is more".
WALK_LIMIT = 101


class _Params:
    """Collects $n placeholders in order while a statement is written."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}"


def _paged(kind: AccountKind, walk: str, limit: str) -> str:
    """Wrap `walk` (ordered by its `walk_id` descending): every planner walks and stops.

    The constant LIMIT inside is what keeps the plan version-independent (issue 14): the
    planner then costs `walk` for at most WALK_LIMIT rows, so it walks the index in order
    and stops, on PostgreSQL 15 as on 16, in generic and custom plans. With only the
    outer `LIMIT $n` (unknown in a generic plan) PostgreSQL 15 costed the whole niche
    and chose a bitmap scan of every link plus a sort. Execution pulls lazily, so the
    inner limit costs nothing: only the rows the outer limit takes are read and rendered.
    """
    view = _view(kind, "a", False)
    return (
        f"SELECT a.id, {view}::text FROM ({walk} LIMIT {WALK_LIMIT}) a "
        f"ORDER BY a.walk_id DESC LIMIT {limit}"
    )


@cache
def _list_sql(
    kind: AccountKind, niches: int, search: bool, verified: bool, after: bool
) -> tuple[str, str, tuple[str, ...]]:
    """(statement name, SQL with $n placeholders, parameter names) for one filter mix.

    `niches` is how many niche filters there are (0, 1, or 2 for "several"). Each mix
    gets the plan shape that keeps every page, however deep, an index walk that stops
    after the page (tests/test_plans.py reads the plans on every server version):
    - one niche: walk the (niche_id, <account>_id) index backwards and join each id;
    - several niches: walk accounts backwards, keeping those linked to any of them;
    - text (alone or with several niches): collect the matches through the GIN index when
      there are few (at most SEARCH_HITS_CAP), else walk accounts backwards (a common word
      matches soon);
    - nothing: walk accounts backwards.
    """
    p = _Params()
    # Only the public columns: no ciphertext is copied, and the analyst role (column
    # grants, CONTRACT §9) may run these statements too.
    columns = ", ".join(f"a.{c}" for c in kind.public_columns)
    row = ["a.is_active"]
    if verified:
        row.append(f"a.is_phone_verified = {p('verified')}")
    match = f"{kind.search('a.')} @@ to_tsquery('simple', {{}})"
    flags = f"{niches}{int(search)}{int(verified)}{int(after)}"
    name = f"{kind.table}_page_{flags}"

    if niches == 1:
        if search:
            row.append(match.format(p("tsquery")))
        keyset = f" AND l.{kind.link_column} < {p('after')}" if after else ""
        walk = (
            f"SELECT l.{kind.link_column} AS walk_id, a.* FROM {kind.link_table} l "
            # OFFSET 0 keeps the lateral from being flattened: a nested loop, never a merge.
            f"CROSS JOIN LATERAL (SELECT {columns} FROM {kind.table} a "
            f"WHERE a.id = l.{kind.link_column} "
            f"AND {' AND '.join(row)} OFFSET 0) a "
            f"WHERE l.niche_id = (SELECT n.id FROM niches n "
            f"WHERE n.slug = ANY({p('slugs')}::text[]) OR n.id = ANY({p('ids')}::int[]) LIMIT 1)"
            f"{keyset} ORDER BY l.niche_id DESC, l.{kind.link_column} DESC"
        )
        return name, _paged(kind, walk, p("limit")), tuple(p.names)

    if after:
        row.append(f"a.id < {p('after')}")
    linked = ""
    if niches:
        linked = (
            f" AND EXISTS (SELECT 1 FROM {kind.link_table} l WHERE l.{kind.link_column} = a.id "
            "AND l.niche_id IN (SELECT n.id FROM niches n "
            f"WHERE n.slug = ANY({p('slugs')}::text[]) OR n.id = ANY({p('ids')}::int[])) "
            # OFFSET 0: a probe of the account's own links per row, never a semi join that
            # reads every link of the niches first (PostgreSQL 15 chose a merge join).
            "OFFSET 0)"
        )
    if search:
        text = match.format(p("tsquery"))
        hits_where = " AND ".join([*row, text])
        limit = p("limit")
        # Few matches: sort their ids (at most SEARCH_HITS_CAP) and probe each in order;
        # many: walk accounts backwards, where a common word matches within a few rows.
        walk_hits = (
            f"SELECT h.id AS walk_id, a.* FROM hits h CROSS JOIN LATERAL (SELECT {columns} "
            f"FROM {kind.table} a WHERE a.id = h.id{linked} OFFSET 0) a "
            f"WHERE (SELECT c FROM n) <= {SEARCH_HITS_CAP} ORDER BY h.id DESC"
        )
        walk_all = (
            f"SELECT a.id AS walk_id, {columns} FROM {kind.table} a "
            # The match as a per-row test (a subquery the GIN index cannot serve), so the
            # planner walks ids instead of collecting every match of a common word.
            f"WHERE (SELECT c FROM n) > {SEARCH_HITS_CAP} AND {' AND '.join(row)} "
            f"AND (SELECT {text}){linked} "
            "ORDER BY a.id DESC"
        )
        sql = (
            f"WITH hits AS MATERIALIZED (SELECT a.id FROM {kind.table} a WHERE {hits_where} "
            f"LIMIT {SEARCH_HITS_CAP + 1}), "
            "n AS (SELECT count(*) AS c FROM hits) "
            f"({_paged(kind, walk_hits, limit)}) UNION ALL ({_paged(kind, walk_all, limit)})"
        )
        return name, sql, tuple(p.names)
    walk = (
        f"SELECT a.id AS walk_id, {columns} FROM {kind.table} a "
        f"WHERE {' AND '.join(row)}{linked} "
        "ORDER BY a.id DESC"
    )
    return name, _paged(kind, walk, p("limit")), tuple(p.names)


def tsquery(q: str) -> str | None:
    """Prefix-match every word of `q` (`jan doe` -> `jan:* & doe:*`); None if it has no words."""
    words = re.findall(r"\w+", q.lower())[:8]
    return " & ".join(f"{w[:50]}:*" for w in words) or None


def page_json(kind: AccountKind, f: ListQuery) -> str:
    """A page `{"items":[…],"nextCursor":…}` as JSON text, in one statement."""
    ts = tsquery(f.q) if f.q is not None else None
    if f.q is not None and ts is None:
        return '{"items":[],"nextCursor":null}'
    niches = min(len(f.niche_slugs) + len(f.niche_ids), 2)
    name, sql, names = _list_sql(
        kind, niches, ts is not None, f.verified is not None, f.after_id is not None
    )
    values = {
        "after": f.after_id,
        "verified": f.verified,
        "slugs": list(f.niche_slugs),
        "ids": list(f.niche_ids),
        "tsquery": ts,
        "limit": f.limit + 1,
    }
    params = [values[n] for n in names]
    rows = replicas.read(lambda db: db.execute_prepared(name, sql, params).fetchall())
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    cursor = f'"{encode_cursor(rows[-1][0])}"' if more else "null"
    return '{"items":[' + ",".join(r[1] for r in rows) + '],"nextCursor":' + cursor + "}"


def list_page(
    kind: AccountKind,
    niche_ids: list[int] | None = None,
    q: str | None = None,
    verified: bool | None = None,
    limit: int = 20,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """A page of accounts as dicts (analytics and tests use this form)."""
    f = ListQuery.of(niche_ids or (), q, verified, limit, after_id)
    return json.loads(page_json(kind, f))["items"]


def list_influencers(**filters: Any) -> list[dict[str, Any]]:
    """A page of influencers as dicts; filters as `list_page`."""
    return list_page(INFLUENCER, **filters)


def list_brands(**filters: Any) -> list[dict[str, Any]]:
    """A page of brands as dicts; filters as `list_page`."""
    return list_page(BRAND, **filters)


# --- niches ------------------------------------------------------------------------------

# Active accounts per active niche (aliases ic.c / bc.c); analytics counts with it too.
# The counts come from `rollup_niches` (migration 0005: kept by triggers on every write,
# equal to a recount, tests/test_rollups.py), not from a scan of every account.
NICHE_COUNTS_FROM = """
  FROM niches n
  LEFT JOIN (SELECT niche_id, sum(accounts)::bigint AS c FROM rollup_niches
              WHERE kind = 'influencer' GROUP BY niche_id) ic ON ic.niche_id = n.id
  LEFT JOIN (SELECT niche_id, sum(accounts)::bigint AS c FROM rollup_niches
              WHERE kind = 'brand' GROUP BY niche_id) bc ON bc.niche_id = n.id
 WHERE n.is_active
"""
_NICHE_OBJECT = json_object(
    [
        *_fields("n", ("id", "name", "slug", "icon", "description")),
        'coalesce(ic.c, 0) AS "influencerCount"',
        'coalesce(bc.c, 0) AS "brandCount"',
    ]
)
NICHES_SQL = (
    f"SELECT coalesce('[' || string_agg({_NICHE_OBJECT}::text, ',' ORDER BY n.name) || ']', '[]')"
    + NICHE_COUNTS_FROM
)
NICHE_SQL = (
    f"SELECT {_NICHE_OBJECT}::text"
    + NICHE_COUNTS_FROM
    + " AND (n.id = %(id)s OR n.slug = %(slug)s)"
)


def niches_json() -> str:
    """`{"items":[…]}`: active niches with active account counts, one aggregate query."""
    return '{"items":' + replicas.read(lambda db: db.execute_sql(NICHES_SQL).fetchone())[0] + "}"


def niche_json(key: str) -> str | None:
    """One active niche by id or slug, with counts, as JSON text (None if unknown)."""
    ident = positive_id(key)
    params = {"id": ident, "slug": key}
    row = replicas.read(lambda db: db.execute_sql(NICHE_SQL, params).fetchone())
    return row[0] if row else None


def list_niches() -> list[dict[str, Any]]:
    """Active niches with counts as dicts (analytics and tests)."""
    return json.loads(niches_json())["items"]
