"""Sign-up of influencers and brands, with their niche links, each in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from peewee import Model

from cloutsy import queries
from cloutsy.db import database
from cloutsy.errors import Invalid
from cloutsy.integrity import translated
from cloutsy.models import Brand, BrandNiche, Influencer, InfluencerNiche
from cloutsy.passwords import hash_password
from cloutsy.schemas import BrandCreate, InfluencerCreate

# Every one filled makes a brand's profile complete (CONTRACT §6: computed, never set).
BRAND_PROFILE_FIELDS = (
    "legal_entity_name",
    "company_type",
    "brand_email_id",
    "poc_name",
    "poc_designation",
    "poc_email_id",
    "poc_contact_number",
    "brand_bio",
    "profile_image",
    "incorporation_document",
    "gst_document",
    "pan_document",
)


def profile_completed(values: dict[str, Any]) -> bool:
    """True once every profile and document field of a brand holds a value."""
    return all(values.get(name) not in (None, "") for name in BRAND_PROFILE_FIELDS)


def link_niches(
    link: type[Model], owner_column: str, owner_id: int, niche_ids: Sequence[int]
) -> None:
    """Insert links to the given active niches in one statement; Invalid if any is unknown."""
    if not niche_ids:
        return
    table = link._meta.table_name
    cursor = database.execute_sql(
        f"INSERT INTO {table} ({owner_column}, niche_id) "
        "SELECT %s, n.id FROM niches n WHERE n.id = ANY(%s) AND n.is_active RETURNING niche_id",
        (owner_id, list(niche_ids)),
    )
    linked = {row[0] for row in cursor.fetchall()}
    missing = [i for i in niche_ids if i not in linked]
    if missing:
        raise Invalid(
            "unknown niche",
            [{"field": "nicheIds", "message": f"no active niche with id {missing[0]}"}],
        )


def create_influencer(data: InfluencerCreate) -> tuple[int, str]:
    """Create an influencer and its niche links; return (id, private view JSON)."""
    fields = data.model_dump(exclude={"niche_ids"}, exclude_none=True)
    with translated(), database.atomic():
        person = Influencer.create(**fields)
        link_niches(InfluencerNiche, "influencer_id", person.id, data.niche_ids)
        body = queries.account_json(queries.INFLUENCERS, person.id, private=True)
    assert body is not None  # just created, in this transaction
    return person.id, body


def create_brand(data: BrandCreate) -> tuple[int, str]:
    """Create a brand (password hashed first, outside the transaction) and its niche links."""
    fields = data.model_dump(exclude={"niche_ids", "password"}, exclude_none=True)
    fields["password"] = hash_password(data.password)
    fields["is_profile_completed"] = profile_completed(fields)
    with translated(), database.atomic():
        brand = Brand.create(**fields)
        link_niches(BrandNiche, "brand_id", brand.id, data.niche_ids)
        body = queries.account_json(queries.BRANDS, brand.id, private=True)
    assert body is not None
    return brand.id, body
