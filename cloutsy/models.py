"""Tables, fields and indexes of CONTRACT §4. Nothing from the web layer.

Rules the database must hold whoever writes to it live here as constraints:
case-insensitive unique usernames (a unique index on `lower(username)`), unique emails
and phones (unique blind indexes `email_digest` / `phone_digest`, §9), enumerations as
CHECKs, cascading junction rows. A column holds PII when it is an `EncryptedField`;
`PII_COLUMNS` is read from the fields, so the model is the one place that says it.
`updated_at` is kept by a trigger (see migrations/0001) so bulk updates move it too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BooleanField,
    CharField,
    Check,
    Expression,
    ForeignKeyField,
    IntegerField,
    Model,
    ModelIndex,
    SmallIntegerField,
    TextField,
)
from playhouse.postgres_ext import DateTimeTZField

from cloutsy import crypto
from cloutsy.db import database
from cloutsy.domains import ACCOUNT_TYPES, COMPANY_TYPES, GENDERS

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

# The columns of the full-text document behind `q`, per account table.
SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "influencers": ("name", "username", "bio"),
    "brands": ("brand_name", "username", "brand_bio"),
}


def search_document(columns: Sequence[str], alias: str = "") -> str:
    """The tsvector expression over `columns` (each prefixed by `alias`, e.g. "a.").

    The GIN index and the list statements are both written by this function: PostgreSQL
    uses the index only for this exact expression (pg_trgm is not in the embedded build).
    """
    parts = " || ' ' || ".join(f"coalesce({alias}{c}, '')" for c in columns)
    return f"to_tsvector('simple'::regconfig, {parts})"


# --- data protection (CONTRACT §4, §9) -------------------------------------------------------
# Which columns are PII is read from the models (`PII_COLUMNS`, below them). The codec,
# migration 0002 (its frozen copy), erasure, key rotation, the analyst's column grants,
# seed.demo and the private views all derive from it.
# Blind index beside each looked-up PII column (HMAC of the normalised value).
DIGEST_COLUMNS: dict[str, str] = {"email": "email_digest", "phone": "phone_digest"}
# Columns no analyst may read besides PII and digests: secrets, and the OTP table's phone
# (the number's blind index, which would let one match OTP rows to accounts).
SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "brands": ("password",),
    "otps": ("phone", "otp"),
    "sessions": ("token_hash",),
    "rate_limit_hits": ("key_hash",),
    "idempotency_keys": ("key_hash", "fingerprint", "response"),
}
# What erasure writes over the public profile (besides emptying PII and digests; the
# username becomes `~<id>`, a form sign-up never accepts, so it never blocks anyone).
ERASED_VALUES: dict[str, dict[str, Any]] = {
    "influencers": {"name": "Erased account", "bio": None, "profile_image": None},
    "brands": {
        "brand_name": "Erased account",
        "brand_bio": None,
        "profile_image": None,
        "legal_entity_name": None,
        "password": "!erased",  # no hash: nothing verifies against it
        "is_profile_completed": False,  # its documents are gone
    },
}


# Relations the analyst reads whole (they show no hidden column): the profile view of
# migrations/0002, the rollups kept by the writes (migrations/0005) and the accounts'
# niche refs, kept the same way (migrations/0006), which the list statements read.
ANALYST_READS = (
    "brand_profile_fill",
    "influencer_niche_refs",
    "brand_niche_refs",
    "rollup_signups",
    "rollup_niches",
    "rollup_niche_counts",
    "rollup_niche_pairs",
)


def analyst_hidden(table: str) -> set[str]:
    """Columns of `table` the analyst role may not select."""
    hidden = set(PII_COLUMNS.get(table, ())) | set(SECRET_COLUMNS.get(table, ()))
    if table in PII_COLUMNS:
        hidden |= set(DIGEST_COLUMNS.values())
    return hidden


class EncryptedField(TextField):
    """A PII column: encrypted by the codec on every write (AAD = table.column).

    Reads through peewee decrypt; the JSON views decrypt in the service (`queries`).
    Never compare with it in SQL (each encryption differs): use the `*_digest` column.
    """

    def db_value(self, value: Any) -> Any:
        if value is None or isinstance(value, (SQL, Expression)):
            return value
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return crypto.encrypt(self.model._meta.table_name, self.column_name, text)

    def python_value(self, value: Any) -> Any:
        return crypto.decrypt(self.model._meta.table_name, self.column_name, value)


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
        if self.get_id() is None:  # an insert: both stamps are the same instant
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


class AccountModel(TimestampedModel):
    """An account table: its blind indexes follow its email and phone on every save()."""

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        changed = self.dirty_field_names
        for column, digest_column in DIGEST_COLUMNS.items():
            if column in changed or self.get_id() is None:
                setattr(self, digest_column, crypto.digest_of(column, getattr(self, column)))
        return super().save(*args, **kwargs)


class Influencer(AccountModel):
    id = AutoField()
    name = CharField(max_length=100)
    username = CharField(max_length=30)
    email = EncryptedField(null=True)  # null once erased
    phone = EncryptedField(null=True)
    date_of_birth = EncryptedField(null=True)  # ISO date, encrypted
    gender = CharField(max_length=20, null=True, constraints=[_in("gender", GENDERS)])
    bio = TextField(null=True, constraints=[Check("char_length(bio) <= 1000")])
    profile_image = CharField(max_length=2048, null=True)
    is_phone_verified = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    is_active = BooleanField(default=True, constraints=[SQL("DEFAULT true")])
    email_digest = CharField(max_length=64, null=True, unique=True)
    phone_digest = CharField(max_length=64, null=True, unique=True)
    erased_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "influencers"


class Brand(AccountModel):
    id = AutoField()
    email = EncryptedField(null=True)
    password = CharField(max_length=255)
    phone = EncryptedField(null=True)
    is_phone_verified = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    brand_name = CharField(max_length=200)
    username = CharField(max_length=30)
    legal_entity_name = CharField(max_length=200, null=True)
    company_type = CharField(
        max_length=32, null=True, constraints=[_in("company_type", COMPANY_TYPES)]
    )
    brand_email_id = EncryptedField(null=True)
    poc_name = EncryptedField(null=True)
    poc_designation = EncryptedField(null=True)
    poc_email_id = EncryptedField(null=True)
    poc_contact_number = EncryptedField(null=True)
    brand_bio = TextField(null=True, constraints=[Check("char_length(brand_bio) <= 1000")])
    profile_image = CharField(max_length=2048, null=True)
    incorporation_document = EncryptedField(null=True)
    gst_document = EncryptedField(null=True)
    pan_document = EncryptedField(null=True)
    is_profile_completed = BooleanField(default=False, constraints=[SQL("DEFAULT false")])
    is_active = BooleanField(default=True, constraints=[SQL("DEFAULT true")])
    email_digest = CharField(max_length=64, null=True, unique=True)
    phone_digest = CharField(max_length=64, null=True, unique=True)
    erased_at = DateTimeTZField(null=True)

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
    phone = CharField(max_length=64)  # the number's blind index (phone_digest), never the number
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
    subject_type = CharField(max_length=16, constraints=[_in("subject_type", ACCOUNT_TYPES)])
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
    subject_type = CharField(max_length=16, constraints=[_in("subject_type", ACCOUNT_TYPES)])
    subject_id = IntegerField()
    phone = EncryptedField()  # the new number, encrypted like the accounts' (§9)
    phone_digest = CharField(max_length=64, index=True)  # its blind index, for lookups
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
        model.add_index(
            ModelIndex(
                model, (SQL("lower(username)"),), unique=True, name=f"{table}_username_lower"
            )
        )
        document = SQL(search_document(SEARCH_COLUMNS[table]))
        model.add_index(ModelIndex(model, (document,), name=f"{table}_search", using="gin"))


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

# Table -> its PII columns (EncryptedField), in declaration order: the one list every part reads.
PII_COLUMNS: dict[str, tuple[str, ...]] = {
    model._meta.table_name: columns
    for model in MODELS
    if (
        columns := tuple(
            f.column_name for f in model._meta.sorted_fields if isinstance(f, EncryptedField)
        )
    )
}

# Unique constraint or index name -> the JSON field a 409 names.
UNIQUE_FIELDS: dict[str, str] = {
    "niches_name": "name",
    "niches_slug": "slug",
    "influencers_username_lower": "username",
    "influencers_email_digest": "email",
    "influencers_phone_digest": "phone",
    "brands_username_lower": "username",
    "brands_email_digest": "email",
    "brands_phone_digest": "phone",
    "influencer_niches_influencer_id_niche_id": "nicheIds",
    "brand_niches_brand_id_niche_id": "nicheIds",
    "sessions_token_hash": "token",
}
