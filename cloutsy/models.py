"""Tables, fields and indexes of CONTRACT §4. Nothing from the web layer.

Rules the database must hold whoever writes to it live here as constraints:
case-insensitive unique usernames and emails (unique indexes on `lower(...)`),
unique E.164 phones, enumerations as CHECKs, cascading junction rows.
`updated_at` is kept by a trigger (see migrations/0001) so bulk updates move it too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BooleanField,
    CharField,
    Check,
    DateField,
    ForeignKeyField,
    IntegerField,
    Model,
    ModelIndex,
    SmallIntegerField,
    TextField,
)
from playhouse.postgres_ext import DateTimeTZField

from cloutsy.db import database

GENDERS = ("female", "male", "non_binary", "other", "prefer_not_to_say")
COMPANY_TYPES = (
    "private_limited",
    "public_limited",
    "llp",
    "partnership",
    "sole_proprietorship",
    "other",
)
SUBJECT_TYPES = ("influencer", "brand")
# A brand's profile is complete once every one of these holds a value (`isProfileCompleted`).
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

# Full-text documents behind `q`; queries must repeat these exact expressions
# for PostgreSQL to use the GIN indexes (pg_trgm is not in the embedded build).
INFLUENCER_SEARCH = (
    "to_tsvector('simple'::regconfig, "
    "coalesce(name, '') || ' ' || coalesce(username, '') || ' ' || coalesce(bio, ''))"
)
BRAND_SEARCH = (
    "to_tsvector('simple'::regconfig, "
    "coalesce(brand_name, '') || ' ' || coalesce(username, '') || ' ' || coalesce(brand_bio, ''))"
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> Any:  # a CHECK constraint (peewee SQL)
    listed = ", ".join(f"'{v}'" for v in values)
    return Check(f"{column} IN ({listed})")


def _created() -> DateTimeTZField:
    return DateTimeTZField(default=utcnow, constraints=[SQL("DEFAULT now()")])


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class TimestampedModel(BaseModel):
    created_at = _created()
    updated_at = _created()

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        now = utcnow()
        if self._pk is None:  # an insert: both stamps are the same instant
            self.created_at = now
        self.updated_at = now
        return super().save(*args, **kwargs)


class Niche(TimestampedModel):
    id = AutoField()
    name = CharField(max_length=100, unique=True)
    slug = CharField(max_length=100, unique=True)
    icon = CharField(max_length=16, null=True)
    description = TextField(null=True)
    is_active = BooleanField(default=True, constraints=[SQL("DEFAULT true")])

    class Meta:
        table_name = "niches"


class Influencer(TimestampedModel):
    id = AutoField()
    name = CharField(max_length=100)
    username = CharField(max_length=30)
    email = CharField(max_length=254)
    phone = CharField(max_length=16, unique=True, null=True)  # null: an unproved claim released
    date_of_birth = DateField(null=True)
    gender = CharField(max_length=20, null=True, constraints=[_in("gender", GENDERS)])
    bio = TextField(null=True, constraints=[Check("char_length(bio) <= 1000")])
    profile_image = CharField(max_length=2048, null=True)
    is_phone_verified = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    is_active = BooleanField(default=True, constraints=[SQL("DEFAULT true")])

    class Meta:
        table_name = "influencers"


class Brand(TimestampedModel):
    id = AutoField()
    email = CharField(max_length=254)
    password = CharField(max_length=255)
    phone = CharField(max_length=16, unique=True, null=True)  # null: an unproved claim released
    is_phone_verified = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    brand_name = CharField(max_length=200)
    username = CharField(max_length=30)
    legal_entity_name = CharField(max_length=200, null=True)
    company_type = CharField(
        max_length=32, null=True, constraints=[_in("company_type", COMPANY_TYPES)]
    )
    brand_email_id = CharField(max_length=254, null=True)
    poc_name = CharField(max_length=100, null=True)
    poc_designation = CharField(max_length=100, null=True)
    poc_email_id = CharField(max_length=254, null=True)
    poc_contact_number = CharField(max_length=16, null=True)
    brand_bio = TextField(null=True, constraints=[Check("char_length(brand_bio) <= 1000")])
    profile_image = CharField(max_length=2048, null=True)
    incorporation_document = CharField(max_length=2048, null=True)
    gst_document = CharField(max_length=2048, null=True)
    pan_document = CharField(max_length=2048, null=True)
    is_profile_completed = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    is_active = BooleanField(default=True, constraints=[SQL("DEFAULT true")])

    class Meta:
        table_name = "brands"


class InfluencerNiche(TimestampedModel):
    id = AutoField()
    influencer = ForeignKeyField(
        Influencer,
        column_name="influencer_id",
        backref="niche_links",
        on_delete="CASCADE",
        index=False,  # the unique (influencer_id, niche_id) index serves these lookups
    )
    niche = ForeignKeyField(Niche, column_name="niche_id", backref="influencer_links", index=False)

    class Meta:
        table_name = "influencer_niches"
        # (niche, influencer) leads with niche_id for the niche filter and keyset pages.
        indexes = ((("influencer", "niche"), True), (("niche", "influencer"), False))


class BrandNiche(TimestampedModel):
    id = AutoField()
    brand = ForeignKeyField(
        Brand, column_name="brand_id", backref="niche_links", on_delete="CASCADE", index=False
    )
    niche = ForeignKeyField(Niche, column_name="niche_id", backref="brand_links", index=False)

    class Meta:
        table_name = "brand_niches"
        indexes = ((("brand", "niche"), True), (("niche", "brand"), False))


class Otp(TimestampedModel):
    id = AutoField()
    phone = CharField(max_length=16)
    otp = CharField(max_length=64)  # HMAC-SHA256 hex of the code, never the code
    is_used = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    expires_at = DateTimeTZField(index=True)  # invoke db.purge
    attempts = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    # The one account this code proves the phone for, chosen at send (CONTRACT §6).
    account_type = CharField(max_length=16, null=True)
    account_id = IntegerField(null=True)

    class Meta:
        table_name = "otps"
        indexes = ((("phone", "created_at"), False),)


class Session(BaseModel):
    id = AutoField()
    token_hash = CharField(max_length=64, unique=True)  # SHA-256 hex, never the token
    subject_type = CharField(max_length=16, constraints=[_in("subject_type", SUBJECT_TYPES)])
    subject_id = IntegerField()
    expires_at = DateTimeTZField(index=True)  # invoke db.purge
    revoked_at = DateTimeTZField(null=True)
    created_at = _created()

    class Meta:
        table_name = "sessions"
        indexes = ((("subject_type", "subject_id"), False),)


class PhoneChange(BaseModel):
    """A phone change made by PATCH, pending until a code sent to `phone` is verified."""

    id = AutoField()
    subject_type = CharField(max_length=16, constraints=[_in("subject_type", SUBJECT_TYPES)])
    subject_id = IntegerField()
    phone = CharField(max_length=16, index=True)
    created_at = _created()

    class Meta:
        table_name = "phone_changes"
        indexes = ((("subject_type", "subject_id"), True),)


class RateLimitHit(BaseModel):
    """One counted event of an abuse limit (`cloutsy.services.limits`)."""

    id = BigAutoField()
    name = CharField(max_length=32)
    key_hash = CharField(max_length=64)  # HMAC of the key: no email, phone or address stored
    at = DateTimeTZField()
    expires_at = DateTimeTZField(index=True)

    class Meta:
        table_name = "rate_limit_hits"
        indexes = ((("name", "key_hash", "at"), False),)


class IdempotencyKey(BaseModel):
    """One Idempotency-Key of one caller on one route (services/idempotency.py); no PII."""

    id = BigAutoField()
    key_hash = CharField(max_length=64, unique=True)  # HMAC of caller, route and key
    fingerprint = CharField(max_length=64)  # HMAC of route and body, never the body
    status = SmallIntegerField(null=True)  # null while the first request runs
    response = TextField(null=True)  # JSON: only what renders the answer again
    created_at = _created()
    expires_at = DateTimeTZField(index=True)

    class Meta:
        table_name = "idempotency_keys"


def _expression_indexes() -> None:
    """Indexes on expressions, which peewee declares outside the field list."""
    for model in (Influencer, Brand):
        table = model._meta.table_name
        for column in ("username", "email"):
            model.add_index(
                ModelIndex(
                    model, (SQL(f"lower({column})"),), unique=True, name=f"{table}_{column}_lower"
                )
            )
    Influencer.add_index(
        ModelIndex(Influencer, (SQL(INFLUENCER_SEARCH),), name="influencers_search", using="gin")
    )
    Brand.add_index(ModelIndex(Brand, (SQL(BRAND_SEARCH),), name="brands_search", using="gin"))


_expression_indexes()

MODELS: list[type[BaseModel]] = [
    Niche,
    Influencer,
    Brand,
    InfluencerNiche,
    BrandNiche,
    Otp,
    Session,
    PhoneChange,
    RateLimitHit,
    IdempotencyKey,
]

# Unique constraint or index name -> the JSON field a 409 names.
UNIQUE_FIELDS: dict[str, str] = {
    "niches_name": "name",
    "niches_slug": "slug",
    "influencers_username_lower": "username",
    "influencers_email_lower": "email",
    "influencers_phone": "phone",
    "brands_username_lower": "username",
    "brands_email_lower": "email",
    "brands_phone": "phone",
    "influencer_niches_influencer_id_niche_id": "nicheIds",
    "brand_niches_brand_id_niche_id": "nicheIds",
    "sessions_token_hash": "token",
}
