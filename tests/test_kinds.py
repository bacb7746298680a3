"""The account-kind registry: every derivation it makes holds against the models and schemas.

Columns of the views come from the response schemas, PII from the models' encrypted
fields; these tests pin that the two agree with each other, with the contract's PII list
(CONTRACT §4) and with what PostgreSQL actually renders.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from typing import Any, get_args

import pytest
from peewee import ForeignKeyField

from cloutsy import queries
from cloutsy.domains import ACCOUNT_TYPES, COMPANY_TYPES, GENDERS
from cloutsy.kinds import JOINED_FIELDS, KINDS, AccountKind
from cloutsy.migrations import MIGRATIONS_DIR
from cloutsy.models import EncryptedField, Influencer, Session
from cloutsy.schemas import BrandCreate, InfluencerCreate
from cloutsy.services import accounts

KIND_LIST = list(KINDS.values())


def check_sql(field: Any) -> str:
    return str(field.constraints[0].sql)


def by_name(kind: AccountKind) -> str:
    return kind.name


def test_one_entry_per_account_type_in_the_same_order() -> None:
    assert tuple(KINDS) == ACCOUNT_TYPES
    assert check_sql(Session.subject_type) == "CHECK (subject_type IN ('influencer', 'brand'))"


def test_every_encrypted_column_was_encrypted_by_a_migration() -> None:
    """A column becomes PII by becoming an `EncryptedField` and by a migration that encrypts
    the values already stored (its `PII = {table: columns}`): both must name the same ones."""
    encrypted: dict[str, list[str]] = {}
    for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.py")):
        spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for table, columns in getattr(module, "PII", {}).items():
            encrypted.setdefault(table, []).extend(columns)
    assert {kind.table: kind.pii for kind in KIND_LIST} == {
        table: tuple(columns) for table, columns in encrypted.items()
    }


@pytest.mark.parametrize("kind", KIND_LIST, ids=by_name)
def test_view_columns_are_the_models_columns_and_pii_is_private_only(kind: AccountKind) -> None:
    columns = set(kind.model._meta.columns)  # type: ignore[attr-defined]
    assert set(kind.private_columns) <= columns
    assert not set(kind.public_columns) & set(kind.pii)
    assert set(kind.pii) <= set(kind.private_columns)
    assert set(kind.private_pii.values()) == set(kind.pii)
    for column in kind.pii:
        assert isinstance(getattr(kind.model, column), EncryptedField)
    assert "password" not in kind.private_columns


@pytest.mark.parametrize("kind", KIND_LIST, ids=by_name)
def test_view_columns_are_the_response_schemas_fields(kind: AccountKind) -> None:
    assert [*kind.public_columns, "niches"] == list(kind.public.model_fields)
    private = {*kind.private_columns, *JOINED_FIELDS}
    assert private == set(kind.private.model_fields)
    assert kind.public.model_config.get("extra") == "forbid"
    assert kind.private.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("kind", KIND_LIST, ids=by_name)
def test_link_and_search_come_from_the_models(kind: AccountKind) -> None:
    assert isinstance(kind.link_owner, ForeignKeyField)
    assert kind.link_owner.rel_model is kind.model
    assert kind.link_column == f"{kind.name}_id"
    index = {i._name: i for i in kind.model._meta.indexes}[f"{kind.table}_search"]  # type: ignore[attr-defined]
    assert index._expressions[0].sql == kind.search()
    assert kind.search("a.") == kind.search().replace("coalesce(", "coalesce(a.")


def test_enumerations_are_shared_by_the_checks_and_the_schemas() -> None:
    gender = InfluencerCreate.model_fields["gender"].annotation
    company = BrandCreate.model_fields["company_type"].annotation
    assert set(get_args(get_args(gender)[0])) == set(GENDERS)
    assert set(get_args(get_args(company)[0])) == set(COMPANY_TYPES)
    assert all(f"'{g}'" in check_sql(Influencer.gender) for g in GENDERS)


def _sign_up(kind: AccountKind) -> tuple[int, str]:
    body: dict[str, Any] = {
        "email": f"{kind.name}.view@example.com",
        "phone": "+919812300077",
        "username": f"{kind.name}.view",
        "niche_ids": [],
    }
    if kind.name == "influencer":
        body.update(name="View Test", date_of_birth=dt.date(1990, 1, 2))
    else:
        body.update(brand_name="View Test", password="a-long-enough-password")
    data = kind.create.model_validate(body)
    password_hash = "!not-a-hash" if kind.has_password else None
    return accounts.create(kind, data, password_hash)


@pytest.mark.parametrize("kind", KIND_LIST, ids=by_name)
def test_rendered_views_validate_against_the_schemas(db: Any, kind: AccountKind) -> None:
    """What PostgreSQL builds has exactly the schemas' fields (extra fields are refused)."""
    account_id, private = _sign_up(kind)
    kind.private.model_validate_json(private)
    public = queries.account_json(kind, account_id)
    assert public is not None
    kind.public.model_validate_json(public)
    page = queries.list_page(kind, limit=1)
    kind.public.model_validate_json(json.dumps(page[0]))
