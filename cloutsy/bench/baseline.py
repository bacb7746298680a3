"""The baseline: the minimal psycopg2 WSGI app a user would write instead of the service.

It serves the two read endpoints the bench measures with the same JSON as the
contract (public view, niches ordered by id, ISO 8601 timestamps) and nothing
else: no validation layer, no ORM, no middleware. Served by gunicorn with one
sync worker and a `ThreadedConnectionPool(1, 5)`, it is the bar the service
must beat by 2x. The DSN comes from `CLOUTSY_BENCH_DSN` (the runner sets it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from psycopg2.pool import ThreadedConnectionPool

from cloutsy.domains import MAX_INT

COLUMNS = (
    "id, name, username, gender, bio, profile_image, is_phone_verified, is_active, "
    "created_at, updated_at"
)
BY_ID = f"SELECT {COLUMNS} FROM influencers WHERE id = %s AND is_active"
NICHES_OF_ONE = (
    "SELECT n.id, n.name, n.slug, n.icon FROM influencer_niches l "
    "JOIN niches n ON n.id = l.niche_id WHERE l.influencer_id = %s ORDER BY n.id"
)
# Newest first through the (niche_id, influencer_id) index; one row more tells
# whether a next page exists.
PAGE = (
    f"SELECT {', '.join('i.' + c for c in COLUMNS.split(', '))} FROM influencer_niches l "
    "JOIN influencers i ON i.id = l.influencer_id "
    "WHERE l.niche_id = (SELECT id FROM niches WHERE {niche} = %s) AND i.is_active "
    "ORDER BY l.influencer_id DESC LIMIT %s"
)
NICHES_OF_MANY = (
    "SELECT l.influencer_id, n.id, n.name, n.slug, n.icon FROM influencer_niches l "
    "JOIN niches n ON n.id = l.niche_id WHERE l.influencer_id = ANY(%s) "
    "ORDER BY l.influencer_id, n.id"
)
BY_ID_PATH = re.compile(r"^/influencers/(\d{1,10})$")
JSON_HEADERS = [("Content-Type", "application/json; charset=utf-8")]

StartResponse = Callable[..., Any]


def _stamp(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def public_view(row: tuple[Any, ...], niches: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's public view of one influencer row (in `COLUMNS` order)."""
    return {
        "id": row[0],
        "name": row[1],
        "username": row[2],
        "gender": row[3],
        "bio": row[4],
        "profileImage": row[5],
        "isPhoneVerified": row[6],
        "isActive": row[7],
        "createdAt": _stamp(row[8]),
        "updatedAt": _stamp(row[9]),
        "niches": niches,
    }


def _niche(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "slug": row[2], "icon": row[3]}


class BaselineApp:
    """A WSGI callable over a lazily created pool (created in the worker, after the fork)."""

    def __init__(self, dsn: str, pool_max: int = 5) -> None:
        self.dsn = dsn
        self.pool_max = pool_max
        self._pool: ThreadedConnectionPool | None = None

    @property
    def pool(self) -> ThreadedConnectionPool:
        if self._pool is None:
            self._pool = ThreadedConnectionPool(1, self.pool_max, self.dsn)
        return self._pool

    def _connection(self) -> Any:
        conn = self.pool.getconn()
        # Autocommit: exactly the two statements per request, no BEGIN/ROLLBACK round trips.
        conn.autocommit = True
        return conn

    def close(self) -> None:
        """Close every pooled connection (tests)."""
        if self._pool is not None:
            self._pool.closeall()
            self._pool = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET":
            return self._send(start_response, "405 Method Not Allowed", _error("method"))
        match = BY_ID_PATH.match(path)
        if match:
            body = self.one(int(match.group(1)))
        elif path == "/influencers":
            body = self.page(environ.get("QUERY_STRING", ""))
        elif path == "/health":
            body = {"status": "ok"}
        else:
            body = None
        if body is None:
            return self._send(start_response, "404 Not Found", _error("not_found"))
        return self._send(start_response, "200 OK", body)

    def one(self, influencer_id: int) -> dict[str, Any] | None:
        """The public view of an active influencer, or None: two statements."""
        if influencer_id > MAX_INT:
            return None
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(BY_ID, (influencer_id,))
                row = cur.fetchone()
                if row is None:
                    return None
                cur.execute(NICHES_OF_ONE, (influencer_id,))
                niches = [_niche(r) for r in cur.fetchall()]
        finally:
            self.pool.putconn(conn)
        return public_view(row, niches)

    def page(self, query_string: str) -> dict[str, Any] | None:
        """The first page of one niche (slug or id), newest first: two statements."""
        params = dict(parse_qsl(query_string))
        niche = params.get("niche", "")
        try:
            limit = max(1, min(100, int(params.get("limit") or 20)))
        except ValueError:
            return None
        column = "id" if niche.isdigit() else "slug"
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(PAGE.format(niche=column), (niche, limit + 1))
                rows = cur.fetchall()
                ids = [r[0] for r in rows[:limit]]
                by_owner: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
                if ids:
                    cur.execute(NICHES_OF_MANY, (ids,))
                    for r in cur.fetchall():
                        by_owner[r[0]].append(_niche(r[1:]))
        finally:
            self.pool.putconn(conn)
        items = [public_view(r, by_owner[r[0]]) for r in rows[:limit]]
        cursor = str(ids[-1]) if len(rows) > limit else None
        return {"items": items, "nextCursor": cursor}

    @staticmethod
    def _send(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body, ensure_ascii=False).encode()
        start_response(status, [*JSON_HEADERS, ("Content-Length", str(len(data)))])
        return [data]


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.replace("_", " ")}}


def create_app(dsn: str | None = None) -> BaselineApp:
    """The WSGI app for gunicorn (`cloutsy.bench.baseline:create_app()`)."""
    return BaselineApp(dsn or os.environ["CLOUTSY_BENCH_DSN"])
