"""Realistic, deterministic demo data for the notebooks and the benchmark (`invoke seed.demo`).

Why it looks the way it does: sign-ups grow along a curve with weekly seasonality
and a few campaign spikes; niche popularity follows a Zipf-like law (a few niches
hold most accounts) with related niches picked together; about 70% of accounts
verify their phone; brands stop at every stage of profile completion.

Every value is drawn from one seeded numpy generator, so the same seed on an empty
database gives the same rows (timestamps are anchored at today's midnight UTC).
Rows go in with PostgreSQL COPY, streamed as CSV from memory, with explicit ids
(derived usernames, emails and phones stay unique); the id sequences are moved
past them afterwards. Existing rows are never touched: ids continue after them.
Everything happens in one transaction: a failure leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from argon2 import PasswordHasher

from cloutsy import crypto
from cloutsy.db import database
from cloutsy.errors import Invalid
from cloutsy.models import COMPANY_TYPES, DIGEST_COLUMNS, GENDERS, PII_COLUMNS
from cloutsy.services.lookup import digest_of

Progress = Callable[[str, int, int], None]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DEMO_PASSWORD = "cloutsy-demo-password"  # every demo brand logs in with this

# Popularity order (most popular first) of the catalogue's slugs among creators and
# brands; they differ on purpose so demand and supply do not line up.
INFLUENCER_RANK = _words(
    """
    fashion beauty lifestyle food travel fitness comedy gaming technology music
    health-and-wellness parenting photography education sports art-and-design home-and-decor
    pets finance automotive diy-and-crafts books business sustainability
    """
)
BRAND_RANK = _words(
    """
    beauty fashion technology food finance health-and-wellness fitness travel education
    lifestyle home-and-decor gaming automotive parenting business sports sustainability pets
    music photography comedy art-and-design books diy-and-crafts
    """
)
ZIPF_EXPONENT = 1.1  # top 3 of 24 niches draw ~53% of first picks
# Niches that are picked together; a related niche is AFFINITY_BOOST times likelier.
AFFINITY = (
    ("fashion", "beauty", "lifestyle", "photography"),
    ("fitness", "health-and-wellness", "sports", "food"),
    ("technology", "gaming", "automotive"),
    ("finance", "business", "education", "books"),
    ("travel", "photography", "food", "lifestyle"),
    ("parenting", "home-and-decor", "diy-and-crafts", "pets"),
    ("music", "comedy", "art-and-design"),
    ("sustainability", "home-and-decor", "health-and-wellness"),
)
AFFINITY_BOOST = 5.0
NICHES_PER_INFLUENCER = (0.38, 0.34, 0.18, 0.10)  # P(1), P(2), P(3), P(4)
NICHES_PER_BRAND = (0.30, 0.35, 0.20, 0.15)

FEMALE = _words(
    """
    Aadhya Aanya Ananya Anika Avni Diya Isha Ishita Kavya Kiara Meera Myra Navya Neha Nisha
    Pooja Priya Riya Saanvi Sara Shreya Simran Sneha Tanvi Trisha Zara Aditi Divya Kritika
    Mahi
    """
)
MALE = _words(
    """
    Aarav Aditya Arjun Aryan Dhruv Ishaan Kabir Karan Krishna Manav Nikhil Pranav Rahul
    Reyansh Rohan Sahil Shaurya Siddharth Varun Vihaan Vivaan Yash Aman Dev Harsh Kunal Mihir
    Neel
    """
)
NEUTRAL = _words(
    """
    Ari Kiran Noor Rain Sam Shan Jyoti Sasha Alex Robin
    """
)
SURNAMES = _words(
    """
    Sharma Verma Gupta Iyer Nair Reddy Patel Shah Mehta Joshi Kapoor Malhotra Khan Singh Das
    Bose Chatterjee Banerjee Menon Pillai Rao Kulkarni Deshpande Jain Agarwal Bhatt Chopra
    Sethi Fernandes DSouza Mishra Pandey Saxena Tiwari Yadav Gill Sandhu
    """
)
CITIES = _words(
    """
    Mumbai Delhi Bengaluru Hyderabad Chennai Kolkata Pune Ahmedabad Jaipur Lucknow Kochi
    Chandigarh Indore Goa Surat Bhopal
    """
)
BIO_OPENERS = (
    "Creating {niche} content from {city}.",
    "{city}-based creator sharing {niche} stories.",
    "Your daily dose of {niche}, straight from {city}.",
    "I talk about {niche}. Based in {city}.",
    "{niche} enthusiast | {city} | collabs open.",
)
BIO_CLOSERS = (
    "",
    " New videos every week.",
    " DM for collaborations.",
    " Sharing what I learn along the way.",
    " Honest reviews, no fluff.",
)
BRAND_BIOS = (
    "{brand} is a homegrown brand from {city}.",
    "Made in {city}: {brand} builds products people come back to.",
    "{brand}, {city}. Working with creators since day one.",
    "Thoughtfully made in {city}. Say hello to {brand}.",
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
BRAND_WORDS = _words(
    """
    Urban Saffron Indigo Monsoon Lotus Banyan Peacock Teal Amber Coral Cedar Ember Nimbus
    Orbit Pebble Quartz Sage Tide Vista Zenith Mango Chai Masala Kesar Neem Tulsi Bamboo Jute
    Marigold
    """
)
BRAND_NOUNS = _words(
    """
    Loom Kitchen Labs Threads Botanicals Studio Works Foods Wellness Gear Tech Finance Living
    Travels Beauty Co Collective Naturals Motors Pets Books Games Fitness Crafts
    """
)
LEGAL_SUFFIX = {
    "private_limited": "Private Limited",
    "public_limited": "Limited",
    "llp": "LLP",
    "partnership": "& Associates",
    "sole_proprietorship": "Enterprises",
    "other": "Ventures",
}
COMPANY_TYPE_WEIGHTS = (0.55, 0.05, 0.15, 0.08, 0.12, 0.05)  # in COMPANY_TYPES order
DESIGNATIONS = (
    "Marketing Manager",
    "Brand Manager",
    "Founder",
    "Co-founder",
    "Growth Lead",
    "Social Media Manager",
    "Head of Marketing",
    "Partnerships Manager",
)
# Profile fields in the order brands tend to fill them; all 12 filled = profile completed.
PROFILE_FIELDS = _words(
    """
    company_type legal_entity_name brand_bio profile_image brand_email_id poc_name
    poc_designation poc_email_id poc_contact_number pan_document gst_document
    incorporation_document
    """
)
VERIFIED_SHARE = 0.70
GENDER_WEIGHTS = (0.50, 0.42, 0.03, 0.01, 0.04)  # in GENDERS order

INFLUENCER_COLUMNS = (
    "id",
    "name",
    "username",
    "email",
    "phone",
    "date_of_birth",
    "gender",
    "bio",
    "profile_image",
    "is_phone_verified",
    "is_active",
    "created_at",
    "updated_at",
)
BRAND_COLUMNS = (
    "id",
    "email",
    "password",
    "phone",
    "is_phone_verified",
    "brand_name",
    "username",
    *PROFILE_FIELDS,
    "is_profile_completed",
    "is_active",
    "created_at",
    "updated_at",
)
LINK_COLUMNS = {
    owner: ("id", f"{owner}_id", "niche_id", "created_at", "updated_at")
    for owner in ("influencer", "brand")
}


@dataclass(frozen=True)
class DemoResult:
    """How many rows `seed_demo` inserted."""

    influencers: int
    brands: int
    influencer_niches: int
    brand_niches: int


@dataclass(frozen=True)
class Growth:
    """Shape of a sign-up curve: the last day is `ratio` times the first, times seasonality."""

    ratio: float
    weekday: tuple[float, ...]  # Monday first
    spike_every_days: int


INFLUENCER_GROWTH = Growth(
    ratio=6.0, weekday=(0.95, 0.95, 1.0, 1.0, 1.05, 1.3, 1.35), spike_every_days=45
)
BRAND_GROWTH = Growth(
    ratio=3.0, weekday=(1.2, 1.25, 1.2, 1.15, 1.05, 0.45, 0.4), spike_every_days=75
)
INFLUENCER_PHONES = 6_000_000_000  # influencers: +91 6000000000-7999999999
BRAND_PHONES = 8_000_000_000  # brands: +91 8000000000-9999999999, never an influencer's
# Sign-ups by hour of day in UTC: Indian evenings (IST = UTC+5:30) are busiest.
HOURLY_UTC = np.array(
    [3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 15, 13, 10, 7, 5, 3, 2, 2], float
)


def _anchor() -> dt.datetime:
    """Today's midnight UTC: demo sign-ups fill the `days` before it (same day, same rows)."""
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def count_accounts() -> int:
    """Influencers plus brands already in the database (`seed.demo` refuses to mix by default)."""
    with database.connected():
        row = database.execute_sql(
            "SELECT (SELECT count(*) FROM influencers) + (SELECT count(*) FROM brands)"
        ).fetchone()
    return int(row[0])


def seed_demo(
    influencers: int,
    brands: int,
    days: int,
    random_seed: int = 42,
    progress: Progress | None = None,
) -> DemoResult:
    """Insert `influencers` and `brands` signed up over the last `days` days, in one transaction."""
    for name, value, low in (("influencers", influencers, 0), ("brands", brands, 0)):
        if value < low:
            raise Invalid(f"{name} must be at least {low}, got {value}")
    if days < 1:
        raise Invalid(f"days must be at least 1, got {days}")
    report = progress or (lambda stage, done, total: None)
    with database.connected(), database.atomic():
        # A bulk load, not a request: the service's per-statement timeout (CONTRACT §3)
        # would cut the index rebuilds on a busy machine.
        database.execute_sql("SET LOCAL statement_timeout = 0")
        # The analytics rollups (migration 0005) are recounted once at the end instead of
        # being kept row by row through millions of inserts.
        database.execute_sql("SET LOCAL cloutsy.rollups = 'off'")
        loads = _generate(influencers, brands, days, random_seed, report)
        with _bulk_load({table: len(rows["id"]) for table, _, rows in loads}, report):
            for table, columns, rows in loads:
                _copy(table, columns, rows, report, _sealers(table))
        for done, (table, _, _) in enumerate(loads, start=1):
            database.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce(max(id), 0) + 1, false) FROM {table}"
            )
            # Fresh statistics for the columns plans turn on, so the planner (and EXPLAIN in
            # the notebooks) sees the new size at once. A full ANALYZE would also sample the
            # full-text index (seconds at 100k rows); autovacuum does that after the commit.
            database.execute_sql(f"ANALYZE {table} ({', '.join(PLANNER_COLUMNS[table])})")
            report("statistics", done, len(loads))
        database.execute_sql("SET LOCAL cloutsy.rollups = 'on'")
        database.execute_sql("SELECT cloutsy_rollups_rebuild()")
        report("rollups", 1, 1)
    return DemoResult(**{table: len(rows["id"]) for table, _, rows in loads})


Load = tuple[str, Sequence[str], dict[str, Any]]  # table, its COPY columns, the column values


def _generate(
    influencers: int, brands: int, days: int, random_seed: int, report: Progress
) -> tuple[Load, ...]:
    """Every row to insert, drawn from one generator seeded with `random_seed`."""
    rng = np.random.default_rng(random_seed)
    end = _anchor()
    report("generating", 0, 2)
    niche_ids, slugs, names = _active_niches()
    first = _next_ids()
    affinity = _affinity(slugs)
    inf = _influencer_rows(rng, influencers, days, end, first["influencers"])
    inf_links = _links(
        rng,
        "influencer",
        inf,
        first["influencer_niches"],
        niche_ids,
        _weights(slugs, INFLUENCER_RANK),
        NICHES_PER_INFLUENCER,
        affinity,
    )
    _fill_bios(rng, inf, inf_links, niche_ids, names)
    report("generating", 1, 2)
    # Argon2id, hashed once (it is slow on purpose); the salt comes from the seed so a
    # re-run gives byte-identical rows. Every demo brand shares the same demo password.
    salt = hashlib.sha256(f"cloutsy-demo-{random_seed}".encode()).digest()[:16]
    password = PasswordHasher().hash(DEMO_PASSWORD, salt=salt)
    brand = _brand_rows(rng, brands, days, end, first["brands"], password)
    brand_links = _links(
        rng,
        "brand",
        brand,
        first["brand_niches"],
        niche_ids,
        _weights(slugs, BRAND_RANK),
        NICHES_PER_BRAND,
        affinity,
    )
    report("generating", 2, 2)
    return (
        ("influencers", INFLUENCER_COLUMNS, inf),
        ("influencer_niches", LINK_COLUMNS["influencer"], inf_links),
        ("brands", BRAND_COLUMNS, brand),
        ("brand_niches", LINK_COLUMNS["brand"], brand_links),
    )


# --- reading what is there -----------------------------------------------------------------


def _active_niches() -> tuple[np.ndarray, list[str], list[str]]:
    rows = database.execute_sql(
        "SELECT id, slug, name FROM niches WHERE is_active ORDER BY id"
    ).fetchall()
    if not rows:
        raise Invalid("there are no active niches: run `invoke seed` first")
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        [r[1] for r in rows],
        [r[2] for r in rows],
    )


def _next_ids() -> dict[str, int]:
    """The first free id of each table: demo rows continue after whatever exists."""
    tables = ("influencers", "brands", "influencer_niches", "brand_niches")
    sql = ", ".join(f"(SELECT coalesce(max(id), 0) + 1 FROM {t})" for t in tables)
    row = database.execute_sql(f"SELECT {sql}").fetchone()
    return dict(zip(tables, (int(v) for v in row), strict=True))


# --- shapes --------------------------------------------------------------------------------


def _weights(slugs: Sequence[str], rank: Sequence[str]) -> np.ndarray:
    """Zipf weights over the active niches: ranked slugs first, unknown ones after, in id order."""
    order = {slug: i for i, slug in enumerate(rank)}
    ranks = sorted(range(len(slugs)), key=lambda i: (order.get(slugs[i], len(rank)), i))
    weights = np.empty(len(slugs))
    weights[ranks] = 1.0 / np.arange(1, len(slugs) + 1) ** ZIPF_EXPONENT
    return weights / weights.sum()


def _affinity(slugs: Sequence[str]) -> np.ndarray:
    """Multiplier matrix: row i boosts the niches related to niche i."""
    index = {slug: i for i, slug in enumerate(slugs)}
    boost = np.ones((len(slugs), len(slugs)))
    for group in AFFINITY:
        members = [index[s] for s in group if s in index]
        for a in members:
            for b in members:
                if a != b:
                    boost[a, b] = AFFINITY_BOOST
    return boost


def _signup_times(
    rng: np.random.Generator, n: int, days: int, end: dt.datetime, growth: Growth
) -> np.ndarray:
    """`n` sorted sign-up instants (µs since the epoch) in the `days` days before `end`."""
    day = np.arange(days)
    trend = np.exp(np.log(growth.ratio) * (day + 0.5) / days)
    first_date = (end - dt.timedelta(days=days)).date()
    weekday = (first_date.weekday() + day) % 7
    seasonal = np.asarray(growth.weekday)[weekday]
    spikes = np.ones(days)
    for start in rng.choice(days, size=max(1, days // growth.spike_every_days), replace=False):
        lift = rng.uniform(2.0, 4.0)  # a campaign: a jump that fades over four days
        for k in range(4):
            if start + k < days:
                spikes[start + k] += lift * 0.5**k
    noise = rng.lognormal(0.0, 0.08, days)
    weights = trend * seasonal * spikes * noise
    per_day = rng.multinomial(n, weights / weights.sum())
    hour = rng.choice(24, size=n, p=HOURLY_UTC / HOURLY_UTC.sum())
    offset_us = np.repeat(day, per_day) * 86_400_000_000 + hour * 3_600_000_000
    offset_us += rng.integers(0, 3_600_000_000, size=n)
    start_us = int((end - dt.timedelta(days=days)).timestamp() * 1_000_000)
    return np.sort(start_us + offset_us)


def _timestamps(us: np.ndarray) -> list[str]:
    """µs since the epoch -> timestamptz literals in UTC."""
    return [t + "+00" for t in np.datetime_as_string(us.astype("datetime64[us]")).tolist()]


def _later(rng: np.random.Generator, created: np.ndarray, end_us: int, mean_h: float) -> np.ndarray:
    """An instant after each `created`, roughly `mean_h` hours later, never after `end_us`."""
    delay = rng.exponential(mean_h * 3_600_000_000, size=len(created)).astype(np.int64)
    return np.minimum(created + delay, end_us - 1)


def _phones(ids: np.ndarray, base: int) -> list[str]:
    """Distinct E.164 Indian mobiles `+91` + (base + a bijective scramble of the id)."""
    # 2654435761 is prime, so coprime with 2e9: distinct ids give distinct numbers.
    scrambled = (ids.astype(np.int64) * 2_654_435_761) % 2_000_000_000
    return [f"+91{base + v}" for v in scrambled.tolist()]


def _centred(values: np.ndarray) -> np.ndarray:
    """`values` minus their mean (an empty array stays empty, without a warning)."""
    return values - values.mean() if len(values) else values


def _pick(rng: np.random.Generator, options: Sequence[str], n: int, p: Any = None) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p)]


# --- influencers ---------------------------------------------------------------------------


def _influencer_rows(
    rng: np.random.Generator, n: int, days: int, end: dt.datetime, first_id: int
) -> dict[str, Any]:
    created = _signup_times(rng, n, days, end, INFLUENCER_GROWTH)
    end_us = int(end.timestamp() * 1_000_000)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    gender_idx = rng.choice(len(GENDERS), size=n, p=GENDER_WEIGHTS)
    # First names by gender, as indexes into FIRST_NAMES (female, then male, then neutral).
    first_idx = np.where(
        gender_idx == 0,
        rng.integers(0, len(FEMALE), n),
        np.where(
            gender_idx == 1,
            len(FEMALE) + rng.integers(0, len(MALE), n),
            len(FEMALE) + len(MALE) + rng.integers(0, len(NEUTRAL), n),
        ),
    )
    last_idx = rng.integers(0, len(SURNAMES), n)
    style_idx = rng.integers(0, len(USERNAME_STYLES), n)
    domains = _pick(rng, EMAIL_DOMAINS, n).tolist()
    tags = [str(i) for i in ids.tolist()]  # the id keeps every username (and email) unique
    room = 30 - 1 - len(tags[-1]) if n else 30  # the API allows 30 characters
    bases = _username_bases(room)[first_idx, last_idx, style_idx].tolist()
    usernames = [f"{base}.{tag}" for base, tag in zip(bases, tags, strict=True)]
    names = np.asarray([[f"{f} {la}" for la in SURNAMES] for f in FIRST_NAMES], dtype=object)[
        first_idx, last_idx
    ].tolist()
    gender = np.asarray(GENDERS, dtype=object)[gender_idx]
    gender[rng.random(n) < 0.08] = None  # optional at sign-up
    age_days = np.clip(rng.normal(26 * 365.25, 6 * 365.25, n), 16 * 366, 60 * 365.25)
    end_day = np.datetime64(end.date(), "D")
    dob = np.datetime_as_string(end_day - age_days.astype("timedelta64[D]")).astype(object)
    dob[rng.random(n) < 0.12] = None
    no_image = (rng.random(n) < 0.15).tolist()
    age_share = (end_us - created) / max(1, days * 86_400_000_000)  # 0 newest .. 1 oldest
    # Older accounts had longer to verify; centred so that ~70% of all accounts are verified.
    verified = rng.random(n) < VERIFIED_SHARE + 0.16 * _centred(age_share)
    active = rng.random(n) >= 0.01 + 0.04 * age_share * ~verified
    updated = np.where(verified, _later(rng, created, end_us, 2.0), created)
    gone = ~active
    updated[gone] = created[gone] + (rng.random(int(gone.sum())) * (end_us - created[gone])).astype(
        np.int64
    )
    created_at = _timestamps(created)
    return {
        "id": ids.tolist(),
        "name": names,
        "username": usernames,
        "email": [f"{u}@{d}" for u, d in zip(usernames, domains, strict=True)],
        "phone": _phones(ids, INFLUENCER_PHONES),
        "date_of_birth": dob.tolist(),
        "gender": gender.tolist(),
        "bio": [None] * n,  # written once the niches are known
        "profile_image": [
            None if skip else f"https://images.example.com/avatars/{tag}.jpg"
            for skip, tag in zip(no_image, tags, strict=True)
        ],
        "is_phone_verified": verified,
        "is_active": active,
        "created_at": created_at,
        "updated_at": _timestamps(updated),
        "created": created,
        "city": rng.integers(0, len(CITIES), size=n),
    }


USERNAME_STYLES = ("{f}.{la}", "{f}_{la}", "{f}{la}", "the.{f}")
FIRST_NAMES = FEMALE + MALE + NEUTRAL


def _username_bases(room: int) -> np.ndarray:
    """Every username stem by [first name, surname, style], cut to `room` characters."""
    bases = np.empty((len(FIRST_NAMES), len(SURNAMES), len(USERNAME_STYLES)), dtype=object)
    for i, first in enumerate(FIRST_NAMES):
        for j, last in enumerate(SURNAMES):
            for k, style in enumerate(USERNAME_STYLES):
                bases[i, j, k] = style.format(f=first.lower(), la=last.lower())[:room]
    return bases


def _fill_bios(
    rng: np.random.Generator,
    rows: dict[str, Any],
    links: dict[str, Any],
    niche_ids: np.ndarray,
    names: Sequence[str],
) -> None:
    """Bios mention the account's first niche and city; some accounts leave theirs empty."""
    n = len(rows["id"])
    if n == 0:
        return
    # Every bio there can be, built once; each account then picks one by index.
    shape = (len(BIO_OPENERS), len(names), len(CITIES), len(BIO_CLOSERS))
    bios = np.empty(shape, dtype=object)
    for o, opener in enumerate(BIO_OPENERS):
        for t, topic in enumerate(names):
            for c, city in enumerate(CITIES):
                for e, closer in enumerate(BIO_CLOSERS):
                    bios[o, t, c, e] = opener.format(niche=topic.lower(), city=city) + closer
    position = {int(i): k for k, i in enumerate(niche_ids.tolist())}
    first_link = np.unique(links["owner_index"], return_index=True)[1]
    topic_idx = np.array([position[i] for i in np.asarray(links["niche_id"])[first_link].tolist()])
    chosen = bios[
        rng.integers(0, shape[0], size=n), topic_idx, rows["city"], rng.integers(0, shape[3], n)
    ]
    chosen[rng.random(n) < 0.15] = None
    rows["bio"] = chosen.tolist()


# --- brands --------------------------------------------------------------------------------


def _brand_rows(
    rng: np.random.Generator, n: int, days: int, end: dt.datetime, first_id: int, password: str
) -> dict[str, Any]:
    created = _signup_times(rng, n, days, end, BRAND_GROWTH)
    end_us = int(end.timestamp() * 1_000_000)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    words, nouns = _pick(rng, BRAND_WORDS, n), _pick(rng, BRAND_NOUNS, n)
    company = _pick(rng, COMPANY_TYPES, n, p=COMPANY_TYPE_WEIGHTS)
    poc_first = np.where(rng.random(n) < 0.5, _pick(rng, FEMALE, n), _pick(rng, MALE, n))
    poc_last = _pick(rng, SURNAMES, n)
    designation = _pick(rng, DESIGNATIONS, n)
    age_share = (end_us - created) / max(1, days * 86_400_000_000)
    # Older brands had longer to finish: ~25% of the newest, ~60% of the oldest completed.
    complete = rng.random(n) < 0.25 + 0.35 * age_share
    filled = np.where(complete, len(PROFILE_FIELDS), rng.integers(0, len(PROFILE_FIELDS), n))
    lift = 0.1 * age_share + 0.1 * complete  # older and complete brands verify more often
    verified = rng.random(n) < VERIFIED_SHARE + _centred(lift)
    active = rng.random(n) >= 0.02
    poc_phone = rng.integers(6_000_000_000, 10_000_000_000, size=n)
    bio, city = rng.integers(0, len(BRAND_BIOS), size=n), _pick(rng, CITIES, n)
    columns: dict[str, list[Any]] = {c: [] for c in BRAND_COLUMNS}
    for k, i in enumerate(ids.tolist()):
        word, noun = words[k], nouns[k]
        username = f"{word}{noun}{i}".lower()
        site = f"{username}.example.com"
        values = {
            "company_type": company[k],
            "legal_entity_name": f"{word} {noun} {LEGAL_SUFFIX[company[k]]}",
            "brand_bio": BRAND_BIOS[bio[k]].format(brand=f"{word} {noun}", city=city[k]),
            "profile_image": f"https://images.example.com/brands/{i}.png",
            "brand_email_id": f"contact@{site}",
            "poc_name": f"{poc_first[k]} {poc_last[k]}",
            "poc_designation": designation[k],
            "poc_email_id": f"{poc_first[k]}.{poc_last[k]}@{site}".lower(),
            "poc_contact_number": f"+91{poc_phone[k]}",
            "pan_document": f"https://docs.example.com/brands/{i}/pan.pdf",
            "gst_document": f"https://docs.example.com/brands/{i}/gst.pdf",
            "incorporation_document": f"https://docs.example.com/brands/{i}/incorporation.pdf",
        }
        for position, field in enumerate(PROFILE_FIELDS):
            columns[field].append(values[field] if position < filled[k] else None)
        columns["email"].append(f"team@{site}")
        columns["brand_name"].append(f"{word} {noun}")
        columns["username"].append(username)
    updated = np.where(filled > 0, _later(rng, created, end_us, 48.0), created)
    return {
        **columns,
        "id": ids.tolist(),
        "password": [password] * n,
        "phone": _phones(ids, BRAND_PHONES),
        "is_phone_verified": verified,
        "is_profile_completed": filled == len(PROFILE_FIELDS),
        "is_active": active,
        "created_at": _timestamps(created),
        "updated_at": _timestamps(updated),
        "created": created,
    }


# --- niche links ---------------------------------------------------------------------------


def _links(
    rng: np.random.Generator,
    owner: str,
    accounts: dict[str, Any],
    first_id: int,
    niche_ids: np.ndarray,
    weights: np.ndarray,
    per_account: Sequence[float],
    affinity: np.ndarray,
) -> dict[str, Any]:
    """1-4 distinct niches per account: the first by popularity, the rest also by relatedness."""
    created: np.ndarray = accounts["created"]
    n = len(created)
    kmax = min(len(per_account), len(niche_ids))
    p = np.asarray(per_account[:kmax]) / sum(per_account[:kmax])
    count = rng.choice(np.arange(1, kmax + 1), size=n, p=p)
    primary = rng.choice(len(niche_ids), size=n, p=weights)
    # Weighted sampling without replacement for all rows at once (Gumbel top-k).
    rest = weights[None, :] * affinity[primary]
    rest[np.arange(n), primary] = 0.0
    keys = np.full(rest.shape, -np.inf)
    np.log(rest, out=keys, where=rest > 0)
    keys += rng.gumbel(size=rest.shape)
    others = np.argsort(-keys, axis=1, kind="stable")[:, : kmax - 1]
    picks = np.column_stack([primary, others])
    chosen = np.arange(kmax)[None, :] < count[:, None]
    # Row-major order: each account's links together, its first pick first.
    owner_index = np.nonzero(chosen)[0]
    stamps = np.asarray(accounts["created_at"], dtype=object)[owner_index].tolist()
    return {
        "id": list(range(first_id, first_id + len(owner_index))),
        f"{owner}_id": np.asarray(accounts["id"], dtype=np.int64)[owner_index].tolist(),
        "niche_id": niche_ids[picks[chosen]].tolist(),
        "created_at": stamps,
        "updated_at": stamps,
        "owner_index": owner_index,
    }


# --- COPY ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _bulk_load(rows: dict[str, int], report: Progress) -> Iterator[None]:
    """Drop secondary indexes and foreign keys of tables about to (at least) double; restore after.

    PostgreSQL's own advice for populating a database: building an index once over
    sorted data, and checking a foreign key with one join, beat maintaining them row by
    row (100k influencers: ~8 s instead of ~16 s). Both are rebuilt from their own
    definitions inside the same transaction, so a failure rolls everything back.
    Small loads into big tables keep their indexes: rebuilding those would cost more.
    """
    existing = _row_counts(rows)
    rebuild = [t for t, n in rows.items() if n >= max(BULK_THRESHOLD, existing[t])]
    saved: list[str] = []
    for table in rebuild:
        for name, create in database.execute_sql(SECONDARY_INDEXES, (table,)).fetchall():
            database.execute_sql(f"DROP INDEX {name}")
            saved.append(create)
        for name, definition in database.execute_sql(FOREIGN_KEYS, (table,)).fetchall():
            database.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            saved.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    yield
    if saved:
        database.execute_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for done, statement in enumerate(saved, start=1):
        database.execute_sql(statement)
        report("indexes", done, len(saved))


BULK_THRESHOLD = 10_000
PLANNER_COLUMNS = {
    "influencers": ("id", "is_active", "is_phone_verified", "created_at"),
    "brands": ("id", "is_active", "is_phone_verified", "is_profile_completed", "created_at"),
    "influencer_niches": ("id", "influencer_id", "niche_id"),
    "brand_niches": ("id", "brand_id", "niche_id"),
}
# Indexes that no constraint owns (a primary key stays), with the statement that recreates each.
SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i
 WHERE i.indrelid = %s::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
 ORDER BY 1
"""
FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY 1
"""


def _digests(column: str, values: list[Any]) -> list[Any]:
    return [digest_of(column, v) for v in values]


def _sealers(table: str) -> dict[str, tuple[str, Callable[[list[Any]], list[Any]]]]:
    """COPY column -> (source column, batch transform): PII encrypted, digests computed.

    Applied a batch at a time as COPY reads (`_CsvStream`), so the encryption overlaps the
    server's parsing on the other core instead of running before it.
    """
    if table not in PII_COLUMNS:
        return {}
    ring = crypto.keyring()
    sealers: dict[str, tuple[str, Callable[[list[Any]], list[Any]]]] = {
        column: (column, functools.partial(ring.encrypt_many, table, column))
        for column in PII_COLUMNS[table]
    }
    for column, digest_column in DIGEST_COLUMNS.items():
        sealers[digest_column] = (column, functools.partial(_digests, column))
    return sealers


def _row_counts(tables: Iterable[str]) -> dict[str, int]:
    return {t: int(database.execute_sql(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def _copy(
    table: str,
    columns: Sequence[str],
    data: dict[str, Any],
    report: Progress,
    sealers: dict[str, tuple[str, Callable[[list[Any]], list[Any]]]] | None = None,
) -> None:
    """COPY `columns` of `data` into `table`, reporting progress as the server reads.

    `sealers` adds or replaces columns by a transform of a source column, per batch
    (the PII codec: ciphertext and blind indexes go straight into COPY).
    """
    sealers = sealers or {}
    columns = [*columns, *(c for c in sealers if c not in columns)]
    series = [_column(data[sealers[c][0] if c in sealers else c]) for c in columns]
    transforms = [sealers[c][1] if c in sealers else None for c in columns]
    total = len(series[0])
    report(table, 0, total)
    if total == 0:
        return
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    stream = _CsvStream(series, lambda done: report(table, done, total), transforms)
    database.cursor().copy_expert(sql, stream)


class _CsvStream:
    """What COPY reads from: rows become CSV a batch at a time, as the server asks for more.

    Formatting the next batch while the server parses the last uses both cores, and
    the whole table never sits in memory as one string.
    """

    BATCH = 5_000

    def __init__(
        self,
        series: list[list[Any]],
        on_batch: Callable[[int], None],
        transforms: Sequence[Callable[[list[Any]], list[Any]] | None] = (),
    ) -> None:
        self._series = series
        self._transforms = list(transforms) or [None] * len(series)
        self._total = len(series[0])
        self._done = 0
        self._on_batch = on_batch

    def read(self, size: int = -1) -> str:
        if self._done >= self._total:
            return ""
        lo, hi = self._done, min(self._done + self.BATCH, self._total)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            zip(
                *(
                    t(s[lo:hi]) if t is not None else s[lo:hi]
                    for s, t in zip(self._series, self._transforms, strict=True)
                ),
                strict=True,
            )
        )
        self._done = hi
        self._on_batch(hi)
        return buffer.getvalue()

    def readline(self, size: int = -1) -> str:  # psycopg2 only calls read(); kept for the protocol
        return self.read(size)


def _column(values: Any) -> list[Any]:
    """A column as COPY-ready Python values: booleans as t/f, None stays empty (NULL)."""
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return np.where(values, "t", "f").tolist()
    return values if isinstance(values, list) else list(values)
