"""Influencer and brand routes: sign-up, browse, detail, and the account's own edits.

Handlers parse, call a service, serialise. Who may do what is decided in `auth`:
PATCH and PUT …/niches only by the account itself, DELETE and …/erase by itself or the admin.
"""

from __future__ import annotations

from typing import Any

import bottle

from cloutsy import queries
from cloutsy.api import auth
from cloutsy.api.caching import private_answer
from cloutsy.api.endpoints import Api
from cloutsy.api.http import body_as, client_address, json_body, path_id, query_as
from cloutsy.api.idempotent import Idempotent
from cloutsy.config import Settings
from cloutsy.errors import NotFound
from cloutsy.kinds import KINDS, AccountKind
from cloutsy.list_query import ListQuery
from cloutsy.schemas import ErrorOut, NicheSet, NicheSetOut
from cloutsy.services import accounts


def created(kind: AccountKind, account_id: int, body: str) -> str:
    bottle.response.status = 201
    bottle.response.set_header("Location", f"/{kind.plural}/{account_id}")
    return body


def page(kind: AccountKind, query: str | None = None) -> str:
    """A page of public views for this request's query string (or `query`): `GET /{plural}`."""
    return queries.page_json(kind, query_as(ListQuery, query))


def view(kind: AccountKind, account_id: int, private: bool = False) -> str:
    """One active account's view: `GET /{plural}/{id}`; 404 when there is none."""
    body = queries.account_json(kind, account_id, private)
    if body is None:
        raise NotFound(f"no such {kind.name}")
    return body


def register(api: Api, settings: Settings) -> None:
    for kind in KINDS.values():
        _register_kind(api, settings, kind)
    for kind in KINDS.values():
        _register_self_service(api, settings, kind)


def _register_kind(api: Api, settings: Settings, kind: AccountKind) -> None:
    """POST (sign-up), GET (list) and GET …/{id} of one kind of account."""
    plural = kind.plural

    def admitted() -> dict[str, Any]:
        """Validate, count the sign-up and do its slow work before any key or write."""
        data = body_as(kind.create)
        return accounts.admit(kind, data, api.limiter, client_address(settings.trusted_proxies))

    def signed_up_again(stored: dict[str, Any]) -> str:
        """A replayed sign-up: the account as it is now, at the same Location."""
        body = queries.account_json(kind, stored["id"], private=True) if "id" in stored else None
        if body is None:
            raise NotFound(f"the {kind.name} created with this Idempotency-Key no longer exists")
        bottle.response.set_header("Location", f"/{plural}/{stored['id']}")
        return body

    @api.route(
        "POST",
        f"/{plural}",
        summary=f"Sign up a {kind.name}",
        tag=plural,
        body=kind.create,
        responses={
            201: kind.private,
            400: ErrorOut,
            409: ErrorOut,
            413: ErrorOut,
            422: ErrorOut,
            429: ErrorOut,
            503: ErrorOut,
        },
        # A password is hashed while no pooled connection is held (the service connects
        # around its database work).
        db=not kind.has_password,
        idempotent=Idempotent(settings, ("id",), signed_up_again, prepare=admitted),
        links={
            f"{verb}{kind.name.title()}": (
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
        account_id, body = accounts.create(kind, body_as(kind.create), **prepared)
        return created(kind, account_id, body)

    @api.route(
        "GET",
        f"/{plural}",
        summary=f"Browse {plural} (public view, keyset pages)",
        tag=plural,
        query=ListQuery,
        responses={200: kind.page, 400: ErrorOut},
        replica=True,
        cache="revalidate",
    )
    def browse() -> str:
        return page(kind)

    @api.route(
        "GET",
        f"/{plural}/{{id}}",
        summary=f"One {kind.name}: public view, private for itself",
        tag=plural,
        auth="optional",
        responses={200: (kind.private, kind.public), 401: ErrorOut, 404: ErrorOut},
        replica=True,  # the public view only: a private one is read from the primary
        cache="revalidate",
        vary_auth=True,
    )
    def detail(id: str) -> str:  # noqa: A002 - the path parameter's name
        account_id = path_id(id)
        who = auth.caller(settings)
        private_view = who is not None and (who.is_admin or who.owns(kind.name, account_id))
        body = view(kind, account_id, private_view)
        if private_view:
            private_answer()
        return body


def _register_self_service(api: Api, settings: Settings, kind: AccountKind) -> None:
    """PATCH, PUT …/niches, DELETE and POST …/erase of one kind of account."""
    plural = kind.plural
    denied = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut}

    @api.route(
        "PATCH",
        f"/{plural}/{{id}}",
        summary=f"Edit the {kind.name}'s own profile (partial); the private view back",
        tag=plural,
        auth="bearer",
        body=kind.update,
        responses={200: kind.private, 400: ErrorOut, **denied, 409: ErrorOut, 413: ErrorOut},
    )
    def edit(id: str) -> str:  # noqa: A002 - the path parameter's name
        account_id = auth.require_self(settings, kind.name, id)
        return accounts.update(kind, account_id, body_as(kind.update))

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
