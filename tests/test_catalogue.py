"""Niche catalogue: at least 20 niches, an idempotent upsert that never breaks links."""

from cloutsy.catalogue import NICHES, seed_niches
from cloutsy.models import Influencer, InfluencerNiche, Niche


def test_catalogue_has_the_original_niches_and_at_least_twenty():
    names = {name for name, *_ in NICHES}
    assert len(NICHES) >= 20
    assert {"Fashion", "Beauty", "Food", "Travel", "Fitness", "Technology", "Gaming"} <= names
    icons = {name: icon for name, _, icon, _ in NICHES}
    assert icons["Fashion"] == "👗" and icons["Beauty"] == "💄"
    slugs = [slug for _, slug, *_ in NICHES]
    assert len(set(slugs)) == len(slugs)
    assert all(desc for *_, desc in NICHES)


def test_seed_is_idempotent(db):
    result = seed_niches()
    assert (result.created, result.updated, result.total) == (0, 0, len(NICHES))
    assert Niche.select().count() == len(NICHES)


def test_changed_description_updates_in_place_and_keeps_links(db):
    food = Niche.get(Niche.slug == "food")
    person = Influencer.create(
        name="A", username="a_b", email="a@example.com", phone="+919800000001"
    )
    InfluencerNiche.create(influencer=person, niche=food)
    changed = tuple(
        (name, slug, icon, "Recipes and restaurants" if slug == "food" else desc)
        for name, slug, icon, desc in NICHES
    )
    result = seed_niches(changed)
    assert (result.created, result.updated) == (0, 1)
    refreshed = Niche.get(Niche.slug == "food")
    assert refreshed.id == food.id
    assert refreshed.description == "Recipes and restaurants"
    assert InfluencerNiche.get(InfluencerNiche.influencer == person).niche_id == food.id


def test_a_deactivated_niche_is_reactivated_and_a_missing_one_created(db):
    Niche.update(is_active=False).where(Niche.slug == "pets").execute()
    Niche.delete().where(Niche.slug == "books").execute()
    result = seed_niches()
    assert (result.created, result.updated) == (1, 1)
    assert Niche.get(Niche.slug == "pets").is_active
