"""Accounts' writes, each in one transaction: sign-up, edits, niches, deactivation, erasure."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, cast

from peewee import Expression, Field, Model

from cloutsy import queries
from cloutsy.db import database
from cloutsy.errors import Invalid, NotFound
from cloutsy.integrity import translated
from cloutsy.models import (
    BRAND_PROFILE_FIELDS,
    DIGEST_COLUMNS,
    ERASED_VALUES,
    PII_COLUMNS,
    Brand,
    BrandNiche,
    Influencer,
    InfluencerNiche,
    Niche,
    Otp,
    Session,
    utcnow,
)
from cloutsy.passwords import hash_password
from cloutsy.schemas import BrandCreate, BrandUpdate, InfluencerCreate, InfluencerUpdate
from cloutsy.services import sessions
from cloutsy.services.lookup import digest_of, with_digests


def _stored(table: str, values: dict[str, Any]) -> dict[str, Any]:
    """Values as written: an empty PII value is no value (SQL cannot see inside ciphertext)."""
    pii = PII_COLUMNS[table]
    return with_digests({k: (None if k in pii and v == "" else v) for k, v in values.items()})


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
    fields = _stored("influencers", data.model_dump(exclude={"niche_ids"}, exclude_none=True))
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
        brand = Brand.create(**_stored("brands", fields))
        link_niches(BrandNiche, "brand_id", brand.id, data.niche_ids)
        body = queries.account_json(queries.BRANDS, brand.id, private=True)
    assert body is not None
    return brand.id, body


# --- self-service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountKind:
    """The tables behind one kind of account."""

    name: str
    model: type[Model]
    link: type[Model]
    link_column: str
    view: queries.Kind


INFLUENCER = AccountKind(
    "influencer", Influencer, InfluencerNiche, "influencer_id", queries.INFLUENCERS
)
BRAND = AccountKind("brand", Brand, BrandNiche, "brand_id", queries.BRANDS)
KINDS = {kind.name: kind for kind in (INFLUENCER, BRAND)}


def _phone_rule(model: Any, changes: dict[str, Any]) -> dict[Field, Any]:
    """A new phone number is not verified: keep the flag only if the number stays the same.

    Written as SQL (`is_phone_verified AND phone_digest = digest(new)`) so it compares with
    the stored value in the same statement, whatever a concurrent update did. Emails and
    phones get their blind index in the same statement.
    """
    stored = _stored(model._meta.table_name, changes)
    values: dict[Field, Any] = {getattr(model, name): value for name, value in stored.items()}
    if "phone" in changes:
        values[model.is_phone_verified] = model.is_phone_verified & (
            model.phone_digest == digest_of("phone", changes["phone"])
        )
    return values


def _profile_completed_sql(changes: dict[str, Any]) -> Expression | bool:
    """`is_profile_completed` after `changes`: new values decided here, kept ones in SQL."""
    kept = []
    for name in BRAND_PROFILE_FIELDS:
        if name in changes:
            if changes[name] in (None, ""):
                return False
        else:
            column = getattr(Brand, name)
            if name in PII_COLUMNS["brands"]:
                kept.append(column.is_null(False))  # ciphertext; "" is stored as NULL
            else:
                kept.append(column.is_null(False) & (column != ""))
    return reduce(operator.and_, kept) if kept else True


def _update(kind: AccountKind, account_id: int, values: dict[Field, Any]) -> str:
    """Apply `values` to an active account and return its private view; NotFound if none."""
    model: Any = kind.model
    with translated(), database.atomic():
        if values:
            changed = model.update(values).where((model.id == account_id) & model.is_active)
            if not changed.execute():
                raise NotFound(f"no such {kind.name}")
        body = queries.account_json(kind.view, account_id, private=True)
    if body is None:
        raise NotFound(f"no such {kind.name}")
    return body


def update_influencer(influencer_id: int, data: InfluencerUpdate) -> str:
    """Change the fields the client sent; return the private view (409 on a taken value)."""
    changes = data.model_dump(exclude_unset=True)
    return _update(INFLUENCER, influencer_id, _phone_rule(Influencer, changes))


def update_brand(brand_id: int, data: BrandUpdate) -> str:
    """Change the fields sent and recompute `is_profile_completed` in the same statement."""
    changes = data.model_dump(exclude_unset=True)
    values = _phone_rule(Brand, changes)
    if values:
        values[Brand.is_profile_completed] = _profile_completed_sql(changes)
    return _update(BRAND, brand_id, values)


def replace_niches(kind: AccountKind, account_id: int, niche_ids: Sequence[int]) -> list[dict]:
    """Make the account's niche set exactly `niche_ids`; return the niche refs, by id.

    All or nothing: an unknown or inactive niche raises Invalid before anything changes.
    Links that stay keep their created_at (when the niche was picked). The account row is
    locked first, so two concurrent replacements end in one of the two sets, not a mix.
    """
    model: Any = kind.model
    link: Any = kind.link
    ids = list(niche_ids)
    with database.atomic():
        owner = model.select(model.id).where((model.id == account_id) & model.is_active)
        if owner.for_update().first() is None:
            raise NotFound(f"no such {kind.name}")
        refs: list[dict] = []
        if ids:
            chosen = Niche.select(Niche.id, Niche.name, Niche.slug, Niche.icon)
            found = chosen.where(Niche.id.in_(ids) & Niche.is_active).order_by(Niche.id).dicts()
            refs = list(cast(Iterable[dict], found))  # peewee's hints type .dicts() rows as models
        missing = sorted(set(ids) - {ref["id"] for ref in refs})
        if missing:
            raise Invalid(
                "unknown niche",
                [{"field": "nicheIds", "message": f"no active niche with id {missing[0]}"}],
            )
        owner_column = getattr(link, kind.link_column.removesuffix("_id"))
        stale = owner_column == account_id
        if ids:
            stale &= link.niche.not_in(ids)
        link.delete().where(stale).execute()
        if ids:
            rows = [{owner_column: account_id, link.niche: i} for i in ids]
            link.insert_many(rows).on_conflict_ignore().execute()
    return refs


def deactivate(kind: AccountKind, account_id: int) -> None:
    """Switch an active account off (is_active=false) and end all its sessions, together."""
    model: Any = kind.model
    with database.atomic():
        changed = model.update(is_active=False).where((model.id == account_id) & model.is_active)
        if not changed.execute():
            raise NotFound(f"no such {kind.name}")
        sessions.revoke_all(kind.name, account_id)


def erase(kind: AccountKind, account_id: int) -> None:
    """Erase an account (CONTRACT §9, DPDP Act 2023 / GDPR art. 17), in one transaction.

    Sets `erased_at`, empties every PII column and digest (so the email and phone can sign
    up again at once), replaces the public profile with placeholders (the username with
    one no sign-up accepts, freeing the real one), deletes its sessions and OTP rows, and
    keeps its sign-up time and niche links for the analytics. NotFound if it is already
    erased or never existed; a deactivated account can still be erased.
    """
    model: Any = kind.model
    table = model._meta.table_name
    with database.atomic():
        row = (
            model.select(model.id, model.phone_digest)
            .where((model.id == account_id) & model.erased_at.is_null())
            .for_update()
            .first()
        )
        if row is None:
            raise NotFound(f"no such {kind.name}")
        phone_key = row.phone_digest  # what otps.phone holds for this number
        values: dict[str, Any] = {c: None for c in PII_COLUMNS[table]}
        values.update({digest: None for digest in DIGEST_COLUMNS.values()})
        values.update(ERASED_VALUES[table])
        values.update(
            erased_at=utcnow(), is_active=False, is_phone_verified=False, username=f"~{account_id}"
        )
        model.update(values).where(model.id == account_id).execute()
        Session.delete().where(
            (Session.subject_type == kind.name) & (Session.subject_id == account_id)
        ).execute()
        if phone_key is not None:
            Otp.delete().where(Otp.phone == phone_key).execute()
