"""The niche catalogue and its idempotent upsert (`invoke seed`, `POST /seed/niches`).

Niches are matched by slug, so renaming a description updates the row in place
and existing influencer/brand links are never broken.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloutsy.db import database

# (name, slug, icon, description)
NICHES: tuple[tuple[str, str, str, str], ...] = (
    ("Fashion", "fashion", "👗", "Fashion, style, and clothing content"),
    ("Beauty", "beauty", "💄", "Beauty, makeup, and skincare content"),
    ("Food", "food", "🍽️", "Food, cooking, and culinary content"),
    ("Travel", "travel", "✈️", "Travel destinations, tips, and adventure content"),
    ("Fitness", "fitness", "💪", "Workouts, training, and active living content"),
    ("Technology", "technology", "💻", "Gadgets, software, and tech reviews"),
    ("Gaming", "gaming", "🎮", "Video games, esports, and streaming content"),
    ("Parenting", "parenting", "👶", "Parenting, family, and kids content"),
    ("Finance", "finance", "💰", "Personal finance, investing, and money tips"),
    ("Education", "education", "📚", "Learning, tutorials, and educational content"),
    ("Music", "music", "🎵", "Music, artists, and performance content"),
    ("Comedy", "comedy", "😂", "Comedy, sketches, and entertainment content"),
    ("Sports", "sports", "⚽", "Sports, athletes, and match coverage"),
    ("Automotive", "automotive", "🚗", "Cars, bikes, and automotive reviews"),
    ("Photography", "photography", "📷", "Photography, cameras, and visual storytelling"),
    ("Art & Design", "art-and-design", "🎨", "Art, illustration, and design content"),
    ("Health & Wellness", "health-and-wellness", "🧘", "Health, mindfulness, and wellness"),
    ("Pets", "pets", "🐾", "Pets, animal care, and cute animal content"),
    ("Home & Decor", "home-and-decor", "🏠", "Interior design, home improvement, and decor"),
    ("Lifestyle", "lifestyle", "🌟", "Everyday life, vlogs, and lifestyle content"),
    ("Business", "business", "💼", "Entrepreneurship, startups, and careers"),
    ("Books", "books", "📖", "Book reviews, reading, and literature"),
    ("DIY & Crafts", "diy-and-crafts", "✂️", "Do-it-yourself projects and handmade crafts"),
    ("Sustainability", "sustainability", "🌱", "Eco-friendly living and sustainability"),
)


@dataclass(frozen=True)
class SeedResult:
    created: int
    updated: int
    total: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "total": self.total}


UPSERT = """
INSERT INTO niches (name, slug, icon, description, is_active)
VALUES (%s, %s, %s, %s, true)
ON CONFLICT (slug) DO UPDATE
   SET name = EXCLUDED.name, icon = EXCLUDED.icon,
       description = EXCLUDED.description, is_active = true
 WHERE (niches.name, niches.icon, niches.description, niches.is_active)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.icon, EXCLUDED.description, true)
RETURNING (xmax = 0) AS inserted
"""


# A renamed niche rewrites the ready niche JSON of every account linked to it (migrations/
# 0006): at 1,000,000 influencers renaming the largest niche (501,000 accounts) took 4.3 s,
# close to the app role's 5 s statement_timeout. The upsert is an admin's deliberate act
# (`POST /seed/niches`, `invoke seed`), so it gets a timeout of its own.
SEED_TIMEOUT = "120s"


def seed_niches(
    catalogue: tuple[tuple[str, str, str, str], ...] = NICHES,
) -> SeedResult:
    """Upsert the catalogue by slug in one transaction; unchanged rows are not touched."""
    created = updated = 0
    with database.atomic():
        database.execute_sql(f"SET LOCAL statement_timeout = '{SEED_TIMEOUT}'")
        for row in catalogue:
            result = database.execute_sql(UPSERT, row).fetchone()
            if result is None:
                continue  # identical row: the WHERE skipped the update
            if result[0]:
                created += 1
            else:
                updated += 1
    return SeedResult(created, updated, len(catalogue))
