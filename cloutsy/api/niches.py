"""Niche routes: the catalogue with account counts, one niche, and the admin seed.

With `niches_cache_s` > 0 both reads come from a per-worker copy (`niche_cache`), at most
that many seconds old; it is dropped at once when this worker seeds the catalogue.
"""

from __future__ import annotations

import bottle

from cloutsy import catalogue, queries
from cloutsy.api import auth
from cloutsy.api.endpoints import Api
from cloutsy.api.http import json_body
from cloutsy.api.niche_cache import NicheCache
from cloutsy.config import Settings
from cloutsy.errors import NotFound
from cloutsy.schemas import ErrorOut, NicheList, NicheOut, SeedOut


def register(api: Api, settings: Settings) -> None:
    cache = NicheCache(settings.niches_cache_s, queries.niches_json)
    cached = settings.niches_cache_s > 0

    def aged(age: int) -> None:
        # How old the copy is: HTTP caches count it against max-age=60.
        bottle.response.set_header("Age", str(age))

    @api.route(
        "GET",
        "/niches",
        summary="Active niches with account counts",
        tag="niches",
        responses={200: NicheList},
        replica=True,
        cache="public",
    )
    def list_niches() -> bytes | str:
        if not cached:
            return queries.niches_json()
        body, age = cache.catalogue()
        aged(age)
        return body

    @api.route(
        "GET",
        "/niches/{key}",
        summary="One niche by id or slug",
        tag="niches",
        responses={200: NicheOut, 404: ErrorOut},
        replica=True,
        cache="public",
    )
    def get_niche(key: str) -> bytes | str:
        found: bytes | str | None = None
        if len(key) <= 100:
            if cached:
                found, age = cache.niche(key)
            else:
                found = queries.niche_json(key)
        if found is None:
            raise NotFound("no such niche")
        if cached:
            aged(age)
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
        result = catalogue.seed_niches().as_dict()
        cache.clear()
        return json_body(result)
