"""The demo rows, drawn from one seeded numpy generator: curves, shares and niche picks.

Why they look the way they do: sign-ups grow along a curve with weekly seasonality
and a few campaign spikes; niche popularity follows a Zipf-like law (a few niches
hold most accounts) with related niches picked together; about 70% of accounts
verify their phone; brands stop at every stage of profile completion. The words come
from `vocabulary`; this module holds the shapes and their parameters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from argon2 import PasswordHasher

from cloutsy.db import database
from cloutsy.demo.vocabulary import (
    AFFINITY,
    BIO_CLOSERS,
    BIO_OPENERS,
    BRAND_BIOS,
    BRAND_NOUNS,
    BRAND_RANK,
    BRAND_WORDS,
    CITIES,
    DESIGNATIONS,
    EMAIL_DOMAINS,
    FEMALE,
    FIRST_NAMES,
    INFLUENCER_RANK,
    LEGAL_SUFFIX,
    MALE,
    NEUTRAL,
    SURNAMES,
    USERNAME_STYLES,
)
from cloutsy.domains import COMPANY_TYPES, GENDERS
from cloutsy.errors import Invalid
from cloutsy.kinds import KINDS
from cloutsy.progress import Progress

DEMO_PASSWORD = "cloutsy-demo-password"  # every demo brand logs in with this

ZIPF_EXPONENT = 1.1  # top 3 of 24 niches draw ~53% of first picks
AFFINITY_BOOST = 5.0
NICHES_PER_INFLUENCER = (0.38, 0.34, 0.18, 0.10)  # P(1), P(2), P(3), P(4)
NICHES_PER_BRAND = (0.30, 0.35, 0.20, 0.15)
COMPANY_TYPE_WEIGHTS = (0.55, 0.05, 0.15, 0.08, 0.12, 0.05)  # in COMPANY_TYPES order
# Profile fields in the order brands tend to fill them; all 12 filled = profile completed.
PROFILE_FIELDS = (
    "company_type",
    "legal_entity_name",
    "brand_bio",
    "profile_image",
    "brand_email_id",
    "poc_name",
    "poc_designation",
    "poc_email_id",
    "poc_contact_number",
    "pan_document",
    "gst_document",
    "incorporation_document",
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
    kind.name: ("id", kind.link_column, "niche_id", "created_at", "updated_at")
    for kind in KINDS.values()
}


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


Load = tuple[str, Sequence[str], dict[str, Any]]  # table, its COPY columns, the column values


def generate_rows(
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
    columns: dict[str, Any] = {c: [] for c in BRAND_COLUMNS}
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
    columns.update(
        id=ids.tolist(),
        password=[password] * n,
        phone=_phones(ids, BRAND_PHONES),
        is_phone_verified=verified,
        is_profile_completed=filled == len(PROFILE_FIELDS),
        is_active=active,
        created_at=_timestamps(created),
        updated_at=_timestamps(updated),
    )
    return {**columns, "created": created}


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
