"""Influencer and brand routes: sign-up, browse, detail, and the account's own edits.

Handlers parse, call a service, serialise. Who may do what is decided in `auth`:
PATCH and PUT …/niches only by the account itself, DELETE and …/erase by itself or the admin.
"""

from __future__ import annotations

import re
from typing import Any

import bottle

from cloutsy import queries
from cloutsy.api import auth
from cloutsy.api.caching import private_answer
from cloutsy.api.http import (
    Api,
    body_as,
    client_address,
    json_body,
    path_id,
    query_params,
    single,
)
from cloutsy.api.idempotent import Idempotent
from cloutsy.config import Settings
from cloutsy.errors import BadRequest, NotFound
from cloutsy.schemas import (
    BrandCreate,
    BrandPage,
    BrandPrivate,
    BrandPublic,
    BrandUpdate,
    ErrorOut,
    InfluencerCreate,
    InfluencerPage,
    InfluencerPrivate,
    InfluencerPublic,
    InfluencerUpdate,
    NicheSet,
    NicheSetOut,
    positive_id,
)
from cloutsy.services import accounts

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
LIST_PARAMS = {"niche", "q", "verified", "limit", "cursor"}
LIST_QUERY = (
    {
        "name": "niche",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "description": "niche slug or id; repeat for any of several",
        "schema": {
            "type": "array",
            "maxItems": 10,
            "items": {"type": "string", "pattern": "^([1-9][0-9]{0,8}|[a-z0-9][a-z0-9-]{0,99})$"},
        },
    },
    {
        "name": "q",
        "in": "query",
        "required": False,
        "description": "words to search for",
        "schema": {"type": "string", "maxLength": 200},
    },
    {"name": "verified", "in": "query", "required": False, "schema": {"type": "boolean"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "nextCursor of the previous page",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{4,24}$"},
    },
)


def list_filter() -> queries.ListFilter:
    """The list query string, checked: 400 bad_request for any value it cannot use."""
    params = query_params(LIST_PARAMS)
    slugs: list[str] = []
    ids: list[int] = []
    niches = params.get("niche", [])
    if len(niches) > 10:
        raise BadRequest("at most 10 niche filters")
    for value in niches:
        value = value.strip().lower()
        if value.isascii() and value.isdigit():
            niche_id = positive_id(value)
            if niche_id is None:
                raise BadRequest("niche id out of range")
            ids.append(niche_id)
        elif SLUG.match(value):
            slugs.append(value)
        else:
            raise BadRequest("niche must be a niche slug or id")
    q = single(params, "q")
    if q is not None and len(q) > 200:
        raise BadRequest("q must be at most 200 characters")
    verified_raw = single(params, "verified")
    if verified_raw not in (None, "true", "false"):
        raise BadRequest("verified must be true or false")
    verified = None if verified_raw is None else verified_raw == "true"
    limit_raw = single(params, "limit")
    limit = 20 if limit_raw is None else positive_id(limit_raw) or 0
    if not 1 <= limit <= 100:
        raise BadRequest("limit must be a whole number from 1 to 100")
    cursor = single(params, "cursor")
    after = queries.decode_cursor(cursor) if cursor is not None else None
    return queries.ListFilter(tuple(slugs), tuple(ids), q, verified, limit, after)


def created(kind: str, account_id: int, body: str) -> str:
    bottle.response.status = 201
    bottle.response.set_header("Location", f"/{kind}s/{account_id}")
    return body


def register(api: Api, settings: Settings) -> None:
    kinds: dict[str, tuple[queries.Kind, Any, Any, Any, Any, Any, Any]] = {
        "influencer": (
            queries.INFLUENCERS,
            InfluencerCreate,
            InfluencerPublic,
            InfluencerPrivate,
            InfluencerPage,
            accounts.admit_influencer,
            accounts.create_influencer,
        ),
        "brand": (
            queries.BRANDS,
            BrandCreate,
            BrandPublic,
            BrandPrivate,
            BrandPage,
            accounts.admit_brand,
            accounts.create_brand,
        ),
    }
    for kind, (table, create_model, public, private, page, admit, create) in kinds.items():
        _register_kind(
            api, settings, kind, table, create_model, public, private, page, admit, create
        )
    self_service = (
        (accounts.INFLUENCER, InfluencerUpdate, InfluencerPrivate, accounts.update_influencer),
        (accounts.BRAND, BrandUpdate, BrandPrivate, accounts.update_brand),
    )
    for kind_, update_model, private_model, update in self_service:
        _register_self_service(api, settings, kind_, update_model, private_model, update)


def _register_kind(api, settings, kind, table, create_model, public, private, page, admit, create):  # noqa: ANN001, ANN202, PLR0913, E501
    plural = f"{kind}s"

    def admitted() -> dict[str, Any]:
        """Validate, count the sign-up and do its slow work before any key or write."""
        return admit(body_as(create_model), api.limiter, client_address(settings.trusted_proxies))

    def signed_up_again(stored: dict[str, Any]) -> str:
        """A replayed sign-up: the account as it is now, at the same Location."""
        body = queries.account_json(table, stored["id"], private=True) if "id" in stored else None
        if body is None:
            raise NotFound(f"the {kind} created with this Idempotency-Key no longer exists")
        bottle.response.set_header("Location", f"/{plural}/{stored['id']}")
        return body

    @api.route(
        "POST",
        f"/{plural}",
        summary=f"Sign up a {kind}",
        tag=plural,
        body=create_model,
        responses={
            201: private,
            400: ErrorOut,
            409: ErrorOut,
            413: ErrorOut,
            422: ErrorOut,
            429: ErrorOut,
            503: ErrorOut,
        },
        # A brand's password is hashed while no pooled connection is held (the service
        # connects around its database work).
        db=kind != "brand",
        idempotent=Idempotent(settings, ("id",), signed_up_again, prepare=admitted),
        links={
            f"{verb}{kind.title()}": (
                f"{op}{plural.title()}Id{suffix}",
                {"id": "$response.body#/id"},
            )
            for verb, op, suffix in (
                ("Get", "get", ""),
                ("Edit", "patch", ""),
                ("SetNichesOf", "put", "Niches"),
                ("Deactivate", "delete", ""),
            )
        },
    )
    def sign_up(**prepared: Any) -> str:
        account_id, body = create(body_as(create_model), **prepared)
        return created(kind, account_id, body)

    @api.route(
        "GET",
        f"/{plural}",
        summary=f"Browse {plural} (public view, keyset pages)",
        tag=plural,
        query=LIST_QUERY,
        responses={200: page, 400: ErrorOut},
        replica=True,
        cache="revalidate",
    )
    def browse() -> str:
        return queries.page_json(table, list_filter())

    @api.route(
        "GET",
        f"/{plural}/{{id}}",
        summary=f"One {kind}: public view, private for itself",
        tag=plural,
        auth="optional",
        responses={200: (private, public), 401: ErrorOut, 404: ErrorOut},
        replica=True,  # the public view only: a private one is read from the primary
        cache="revalidate",
        vary_auth=True,
    )
    def detail(id: str) -> str:  # noqa: A002 - the path parameter's name
        account_id = path_id(id)
        who = auth.caller(settings)
        private_view = who is not None and (who.is_admin or who.owns(kind, account_id))
        body = queries.account_json(table, account_id, private_view)
        if body is None:
            raise NotFound(f"no such {kind}")
        if private_view:
            private_answer()
        return body


def _register_self_service(api, settings, kind, update_model, private, update):  # noqa: ANN001, ANN202
    """PATCH, PUT …/niches and DELETE of one kind of account."""
    plural = f"{kind.name}s"
    denied = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut}

    @api.route(
        "PATCH",
        f"/{plural}/{{id}}",
        summary=f"Edit the {kind.name}'s own profile (partial); the private view back",
        tag=plural,
        auth="bearer",
        body=update_model,
        responses={200: private, 400: ErrorOut, **denied, 409: ErrorOut, 413: ErrorOut},
    )
    def edit(id: str) -> str:  # noqa: A002 - the path parameter's name
        account_id = auth.require_self(settings, kind.name, id)
        return update(account_id, body_as(update_model))

    @api.route(
        "PUT",
        f"/{plural}/{{id}}/niches",
        summary=f"Replace the {kind.name}'s niche set, all or nothing",
        tag=plural,
        auth="bearer",
        body=NicheSet,
        responses={200: NicheSetOut, 400: ErrorOut, **denied, 413: ErrorOut},
    )
    def set_niches(id: str) -> bytes:  # noqa: A002
        account_id = auth.require_self(settings, kind.name, id)
        refs = accounts.replace_niches(kind, account_id, body_as(NicheSet).niche_ids)
        return json_body({"items": refs})

    @api.route(
        "DELETE",
        f"/{plural}/{{id}}",
        summary=f"Deactivate the {kind.name} and end its sessions (itself or the admin)",
        tag=plural,
        auth="bearer",
        responses={204: None, **denied},
    )
    def deactivate(id: str) -> bytes:  # noqa: A002
        account_id = auth.require_self(settings, kind.name, id, admin=True)
        accounts.deactivate(kind, account_id)
        bottle.response.status = 204
        return b""

    @api.route(
        "POST",
        f"/{plural}/{{id}}/erase",
        summary=f"Erase the {kind.name}: PII gone, identifiers free again (itself or the admin)",
        tag=plural,
        auth="bearer",
        responses={204: None, **denied},
    )
    def erase(id: str) -> bytes:  # noqa: A002
        account_id = auth.require_self(settings, kind.name, id, admin=True)
        accounts.erase(kind, account_id)
        bottle.response.status = 204
        return b""
