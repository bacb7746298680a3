"""The hottest reads, answered without bottle's per-request machinery.

Why: on one worker the service is bound by its Python time per request, and for
`GET /influencers/{id}` bottle's request and response objects, hooks, router and header
list cost more than the read itself (measured in-process on the bench data: ~180 us a
request through bottle against ~115 us here, issue 14).

What it answers: an anonymous `GET /{influencers|brands}/{id}` or `GET /{influencers|
brands}?…` (a page) that comes out 200 or 304, when no CORS origins and no replicas are
configured (those add per-caller headers and routing that live in the plugin). Every other
request, and every other outcome of these (no such account, a bad query parameter, a busy
pool, a database error), goes through bottle: the outcome travels in the environ
(`http.PENDING`) and the plugin answers it exactly as if its handler had raised it,
without reading again. The reads are the routes' own (`accounts.view`, `accounts.page`),
the headers come from the same rules
(`caching.validators`, `http.request_id`, each route's own cache policy), and
tests/test_hot_reads.py checks that both paths answer byte for byte alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import bottle

from cloutsy import replicas
from cloutsy.api import accounts, caching, metrics
from cloutsy.api.http import JSON, PENDING, path_id, request_id
from cloutsy.db import database
from cloutsy.kinds import KINDS, AccountKind

PATH = re.compile(r"/([a-z]+)(?:/([0-9]{1,10}))?")
StartResponse = Callable[..., Any]
# Reads the answer's JSON text from the request (None: not found); may raise.
Read = Callable[[dict[str, Any], str | None], str | None]


@dataclass(frozen=True)
class Hot:
    """One route answered here: how to read it, and its headers as bottle registered them."""

    template: str
    read: Read
    cache_control: str
    vary_auth: bool


class HotReads:
    """`__call__` answers a hot read, or returns None for bottle to answer the request."""

    def __init__(self, app: bottle.Bottle, cors_origins: frozenset[str]) -> None:
        self.enabled = not cors_origins
        self.routes: dict[tuple[str, bool], Hot] = {}
        for kind in KINDS.values():
            detail, page = partial(_detail, kind), partial(_page, kind)
            for template, read, with_id in (
                (f"/{kind.plural}/<id>", detail, True),
                (f"/{kind.plural}", page, False),
            ):
                route = next(r for r in app.routes if r.method == "GET" and r.rule == template)
                self.routes[(kind.plural, with_id)] = Hot(
                    template,
                    read,
                    caching.policy_of(route.config.get("cache")),
                    bool(route.config.get("vary_auth", False)),
                )

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        if (
            not self.enabled
            or environ["REQUEST_METHOD"] != "GET"
            or "HTTP_AUTHORIZATION" in environ
            or replicas.current is not None
        ):
            return None
        match = PATH.fullmatch(environ.get("PATH_INFO", ""))
        hot = self.routes.get((match.group(1), match.group(2) is not None)) if match else None
        if hot is None or match is None:
            return None
        started = time.perf_counter()
        rid = request_id(environ)
        text = _run(hot.read, environ, match.group(2))
        if text is None:
            return None
        body = text.encode()
        not_modified, headers = caching.validators(
            body, hot.cache_control, hot.vary_auth, environ.get("HTTP_IF_NONE_MATCH")
        )
        headers.append(("X-Request-Id", rid))
        if not_modified:
            status, body = 304, b""
        else:
            status = 200
            headers[:0] = [("Content-Type", JSON), ("Content-Length", str(len(body)))]
        start_response("304 Not Modified" if not_modified else "200 OK", headers)
        metrics.observe_request(hot.template, "GET", status, time.perf_counter() - started, None)
        return [body]


def _detail(kind: AccountKind, environ: dict[str, Any], ident: str | None) -> str:
    """`GET /{plural}/{id}` for an anonymous caller: the public view."""
    return accounts.view(kind, path_id(ident or ""))


def _page(kind: AccountKind, environ: dict[str, Any], ident: str | None) -> str:
    """`GET /{plural}?…`: a page of public views."""
    return accounts.page(kind, environ.get("QUERY_STRING", ""))


def _run(read: Read, environ: dict[str, Any], ident: str | None) -> str | None:
    """`read` on a pooled connection; None with the outcome left in `environ` for bottle.

    A connection lost on the way goes back to the pool, whose checkout check drops it.
    """
    try:
        with database.obj.connected():  # reuses a test transaction's connection
            return read(environ, ident)
    except Exception as exc:  # not found, bad input, busy pool, server down: the plugin answers
        environ[PENDING] = exc
        return None
