"""Niche routes: the catalogue with account counts, one niche, and the admin seed."""

from __future__ import annotations

from cloutsy import catalogue, queries
from cloutsy.api import auth
from cloutsy.api.http import Api, json_body
from cloutsy.config import Settings
from cloutsy.errors import NotFound
from cloutsy.schemas import ErrorOut, NicheList, NicheOut, SeedOut


def register(api: Api, settings: Settings) -> None:
    @api.route(
        "GET",
        "/niches",
        summary="Active niches with account counts",
        tag="niches",
        responses={200: NicheList},
        cache="public",
    )
    def list_niches() -> str:
        return queries.niches_json()

    @api.route(
        "GET",
        "/niches/{key}",
        summary="One niche by id or slug",
        tag="niches",
        responses={200: NicheOut, 404: ErrorOut},
        cache="public",
    )
    def get_niche(key: str) -> str:
        found = queries.niche_json(key) if len(key) <= 100 else None
        if found is None:
            raise NotFound("no such niche")
        return found

    @api.route(
        "POST",
        "/seed/niches",
        summary="Upsert the niche catalogue (idempotent)",
        tag="niches",
        auth="admin",
        responses={200: SeedOut, 401: ErrorOut, 403: ErrorOut},
    )
    def seed() -> bytes:
        auth.require_admin(settings)
        return json_body(catalogue.seed_niches().as_dict())
