"""Models and constraints: case-insensitive uniqueness, checks, cascades, timestamps."""

import datetime as dt

import pytest
from peewee import IntegrityError

from cloutsy.db import database
from cloutsy.errors import Conflict, Invalid
from cloutsy.integrity import translated
from cloutsy.models import Brand, BrandNiche, Influencer, InfluencerNiche, Niche, Otp, Session

OLD = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def make_influencer(n=1, **extra):
    fields = dict(
        name=f"Creator {n}",
        username=f"creator{n}",
        email=f"creator{n}@example.com",
        phone=f"+9198765{n:05d}",
    )
    fields.update(extra)
    return Influencer.create(**fields)


def make_brand(n=1, **extra):
    fields = dict(
        email=f"brand{n}@example.com",
        password="argon2-hash",
        phone=f"+9188765{n:05d}",
        brand_name=f"Brand {n}",
        username=f"brand{n}",
    )
    fields.update(extra)
    return Brand.create(**fields)


def create_conflict(factory, **fields):
    with pytest.raises(Conflict) as err, translated(), database.atomic():
        factory(**fields)
    return err.value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": 2, "username": "CREATOR1"}, "username"),
        ({"n": 2, "email": "Creator1@Example.COM"}, "email"),
        ({"n": 2, "phone": "+919876500001"}, "phone"),
    ],
)
def test_influencer_unique_values_conflict_case_insensitively(db, fields, field):
    make_influencer(1)
    error = create_conflict(make_influencer, **fields)
    assert error.field == field
    assert error.to_dict()["error"]["details"][0]["field"] == field
    assert Influencer.select().count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": 2, "username": "Brand1"}, "username"),
        ({"n": 2, "email": "BRAND1@example.com"}, "email"),
        ({"n": 2, "phone": "+918876500001"}, "phone"),
    ],
)
def test_brand_unique_values_conflict_case_insensitively(db, fields, field):
    make_brand(1)
    assert create_conflict(make_brand, **fields).field == field


def test_niche_name_and_slug_are_unique(db):
    fashion = Niche.get(Niche.slug == "fashion")
    error = create_conflict(Niche.create, name=fashion.name, slug="fashion-2")
    assert error.field == "name"
    assert create_conflict(Niche.create, name="Fashion 2", slug="fashion").field == "slug"


def test_a_niche_link_is_unique_per_account(db):
    person = make_influencer()
    niche = Niche.get(Niche.slug == "food")
    InfluencerNiche.create(influencer=person, niche=niche)
    assert (
        create_conflict(InfluencerNiche.create, influencer=person, niche=niche).field == "nicheIds"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"gender": "robot"}, "gender"), ({"bio": "x" * 1001}, "bio")],
)
def test_check_constraints_surface_as_invalid(db, fields, field):
    with pytest.raises(Invalid) as err, translated(), database.atomic():
        make_influencer(**fields)
    assert err.value.details[0]["field"] == field


def test_company_type_is_checked_by_the_database(db):
    with pytest.raises(Invalid) as err, translated(), database.atomic():
        make_brand(company_type="cartel")
    assert err.value.details[0]["field"] == "companyType"


def test_unknown_niche_link_is_rejected_by_the_foreign_key(db):
    person = make_influencer()
    with pytest.raises(Invalid) as err, translated(), database.atomic():
        InfluencerNiche.create(influencer=person, niche=999_999)
    assert err.value.details[0]["field"] == "nicheIds"


def test_deleting_an_account_cascades_to_its_niche_links(db):
    person, brand = make_influencer(), make_brand()
    for slug in ("food", "travel"):
        niche = Niche.get(Niche.slug == slug)
        InfluencerNiche.create(influencer=person, niche=niche)
        BrandNiche.create(brand=brand, niche=niche)
    person.delete_instance()
    brand.delete_instance()
    assert InfluencerNiche.select().count() == 0
    assert BrandNiche.select().count() == 0


def test_a_niche_in_use_cannot_be_deleted(db):
    person = make_influencer()
    niche = Niche.get(Niche.slug == "food")
    InfluencerNiche.create(influencer=person, niche=niche)
    with pytest.raises(IntegrityError), database.atomic():
        Niche.delete().where(Niche.id == niche.id).execute()


def _stamps(model, pk):
    return model.select(model.created_at, model.updated_at).where(model.id == pk).tuples().get()


def test_database_sets_timestamps_on_insert(db):
    database.execute_sql(
        "INSERT INTO otps (phone, otp, expires_at) VALUES ('+919800000000', 'h', now())"
    )
    otp = Otp.get()
    assert otp.created_at is not None and otp.updated_at is not None
    assert otp.created_at.tzinfo is not None


@pytest.mark.parametrize("how", ["save", "bulk", "raw"])
def test_updated_at_moves_on_every_kind_of_update(db, how):
    person = make_influencer()
    Influencer.update(created_at=OLD, updated_at=OLD).where(Influencer.id == person.id).execute()
    # The trigger overrides the explicit OLD above too: reset it without firing the trigger.
    database.execute_sql("ALTER TABLE influencers DISABLE TRIGGER influencers_updated_at")
    Influencer.update(updated_at=OLD).where(Influencer.id == person.id).execute()
    database.execute_sql("ALTER TABLE influencers ENABLE TRIGGER influencers_updated_at")
    assert _stamps(Influencer, person.id) == (OLD, OLD)
    if how == "save":
        fresh = Influencer.get_by_id(person.id)
        fresh.bio = "changed"
        fresh.save()
    elif how == "bulk":
        Influencer.update(bio="changed").where(Influencer.id == person.id).execute()
    else:
        database.execute_sql("UPDATE influencers SET bio = 'changed' WHERE id = %s", (person.id,))
    created, updated = _stamps(Influencer, person.id)
    assert created == OLD
    assert updated > OLD + dt.timedelta(days=365)


def test_session_subject_type_is_checked(db):
    with pytest.raises(Invalid), translated(), database.atomic():
        Session.create(
            token_hash="a" * 64,
            subject_type="admin",
            subject_id=1,
            expires_at=dt.datetime.now(dt.UTC),
        )
