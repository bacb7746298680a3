"""The account-kind registry: everything that differs between influencers and brands, once.

One `AccountKind` per kind names its model, its niche link model, its request and
response schemas and the brand-only profile rule; the rest is derived from those: table
and link column from the models, PII columns from the `EncryptedField`s, public and
private view columns from the response schemas, search columns from `models`, paths from
the table. The read statements (`queries`), the writes (`services`), the routes and their
OpenAPI entries (`api`), sessions, analytics and the demo data all read this registry,
so an account field is declared in the model and the schemas and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from peewee import ForeignKeyField
from pydantic.alias_generators import to_camel

from cloutsy.domains import AccountType
from cloutsy.models import (
    BRAND_PROFILE_FIELDS,
    PII_COLUMNS,
    SEARCH_COLUMNS,
    AccountModel,
    Brand,
    BrandNiche,
    Influencer,
    InfluencerNiche,
    TimestampedModel,
    search_document,
)
from cloutsy.schemas import (
    BrandCreate,
    BrandPage,
    BrandPrivate,
    BrandPublic,
    BrandUpdate,
    InfluencerCreate,
    InfluencerPage,
    InfluencerPrivate,
    InfluencerPublic,
    InfluencerUpdate,
    Schema,
    View,
)

# View fields that are not columns of the account table: `queries` builds them from the
# niche links and from the account's pending phone change (phone_changes).
JOINED_FIELDS = ("niches", "pending_phone")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per kind
class AccountKind:
    """One kind of account: its tables, schemas and rules; every other fact derives from these."""

    name: AccountType  # the word sessions, OTPs, phone changes and rollups store
    model: type[AccountModel]
    link: type[TimestampedModel]  # its niche links
    create: type[Schema]  # sign-up body
    update: type[Schema]  # PATCH body (partial)
    public: type[View]  # the view everyone gets
    private: type[View]  # the view the account itself (or the admin) gets
    page: type[View]  # a list page of public views
    # All of these filled = `is_profile_completed` (brands); empty: the kind has no such flag.
    profile_fields: tuple[str, ...] = ()

    @cached_property
    def table(self) -> str:
        return str(self.model._meta.table_name)  # type: ignore[attr-defined]

    @cached_property
    def plural(self) -> str:
        """The routes' collection name and tag (`/influencers`)."""
        return self.table

    @cached_property
    def link_table(self) -> str:
        return str(self.link._meta.table_name)  # type: ignore[attr-defined]

    @cached_property
    def link_owner(self) -> ForeignKeyField:
        """The link model's foreign key to this kind's table."""
        fields = self.link._meta.sorted_fields  # type: ignore[attr-defined]
        return next(
            f for f in fields if isinstance(f, ForeignKeyField) and f.rel_model is self.model
        )

    @cached_property
    def link_column(self) -> str:
        return str(self.link_owner.column_name)

    @cached_property
    def refs_table(self) -> str:
        """Its accounts' niches as ready JSON (`link_column`, `niches`), kept by triggers
        (migrations/0006): what the views read instead of joining the niches per read."""
        return f"{self.name}_niche_refs"

    @cached_property
    def pii(self) -> tuple[str, ...]:
        """The encrypted columns (CONTRACT §9): only ever in the private view."""
        return PII_COLUMNS[self.table]

    @cached_property
    def search_columns(self) -> tuple[str, ...]:
        """What `q` searches (name, username, bio)."""
        return SEARCH_COLUMNS[self.table]

    def search(self, alias: str = "") -> str:
        """The full-text document of `search_columns`, as its GIN index is declared."""
        return search_document(self.search_columns, alias)

    @cached_property
    def public_columns(self) -> tuple[str, ...]:
        """Columns of the public view, in the order of the `public` schema's fields."""
        return tuple(f for f in self.public.model_fields if f not in JOINED_FIELDS)

    @cached_property
    def private_columns(self) -> tuple[str, ...]:
        """The public columns, then the `private` schema's own columns (PII among them)."""
        own = (f for f in self.private.model_fields if f not in self.public.model_fields)
        return (*self.public_columns, *(f for f in own if f not in JOINED_FIELDS))

    @cached_property
    def private_pii(self) -> dict[str, str]:
        """JSON key -> column of each encrypted field of the private view."""
        return {to_camel(c): c for c in self.private_columns if c in self.pii}

    @cached_property
    def has_password(self) -> bool:
        """Signs up with a password (hashed while no pooled connection is held)."""
        return "password" in self.create.model_fields


INFLUENCER = AccountKind(
    "influencer",
    Influencer,
    InfluencerNiche,
    InfluencerCreate,
    InfluencerUpdate,
    InfluencerPublic,
    InfluencerPrivate,
    InfluencerPage,
)
BRAND = AccountKind(
    "brand",
    Brand,
    BrandNiche,
    BrandCreate,
    BrandUpdate,
    BrandPublic,
    BrandPrivate,
    BrandPage,
    profile_fields=BRAND_PROFILE_FIELDS,
)
# By name, in the order of `domains.ACCOUNT_TYPES` (influencer first: CONTRACT §6's default).
KINDS: dict[str, AccountKind] = {kind.name: kind for kind in (INFLUENCER, BRAND)}
