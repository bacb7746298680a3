"""The route registry: each route registered on Bottle together with its contract.

`Api.route` records one `Endpoint` per route (body, query, responses, auth, caching) as it
registers the handler, and /openapi.json is generated from those records
(`api/openapi.py`), so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import bottle
from pydantic import BaseModel

from cloutsy.api import caching
from cloutsy.services.limits import Limiter

Body = type[BaseModel] | tuple[type[BaseModel], ...] | None


@dataclass
class Endpoint:
    """One route's contract, as /openapi.json describes it."""

    method: str
    path: str
    summary: str
    tag: str
    auth: str | None = None
    body: type[BaseModel] | None = None
    # A status's body: one model, several (oneOf: e.g. public or private view), or none.
    responses: dict[int, Body] = field(default_factory=dict)
    # The query string's model (its fields are the OpenAPI query parameters).
    query: type[BaseModel] | None = None
    path_params: tuple[dict[str, Any], ...] = ()
    # OpenAPI links from the first 2xx response: name -> (operationId, parameters)
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # Cache-Control of a 200 GET (caching.POLICIES); vary_auth: the answer depends on the
    # caller (Vary: Authorization).
    cache: str | None = None
    vary_auth: bool = False
    # Accepts an Idempotency-Key (CONTRACT §5 "Idempotent retries").
    idempotent: bool = False


class Wrapper(Protocol):
    """Something that wraps a route's handler (the idempotency layer)."""

    def wrap(self, fn: Callable[..., Any], route: str) -> Callable[..., Any]: ...


class Api:
    """A Bottle app plus the contract of each route registered through it."""

    def __init__(self, app: bottle.Bottle, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter  # every abuse limit, one mechanism (services/limits.py)
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: str | None = None,
        body: type[BaseModel] | None = None,
        responses: dict[int, Body] | None = None,
        query: type[BaseModel] | None = None,
        links: dict[str, tuple[str, dict[str, str]]] | None = None,
        db: bool = True,
        replica: bool = False,
        cache: str | None = None,
        vary_auth: bool = False,
        idempotent: Wrapper | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register `fn` for METHOD path (OpenAPI `{name}` placeholders).

        `replica`: a public read that a streaming replica may answer (CONTRACT §10).
        `cache` names the Cache-Control of its 200 GET answers (caching.POLICIES; none:
        `private, no-store`), `vary_auth` says the answer depends on the caller, and
        `idempotent` wraps the handler so it honours an Idempotency-Key.
        """
        if cache is not None and cache not in caching.POLICIES:
            raise ValueError(f"unknown cache policy {cache!r}")
        names = re.findall(r"{(\w+)}", path)
        rule = re.sub(r"{(\w+)}", r"<\1>", path)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            handler = idempotent.wrap(fn, f"{method} {path}") if idempotent else fn
            self.app.route(
                rule, method, handler, db=db, replica=replica, cache=cache, vary_auth=vary_auth
            )
            params = tuple(
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            )
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    summary,
                    tag,
                    auth,
                    body,
                    responses or {},
                    query,
                    params,
                    links or {},
                    cache,
                    vary_auth,
                    idempotent is not None,
                )
            )
            return fn

        return decorate
