"""The accounts' niche refs (migration 0006) stay exactly what the links and niches say.

The views read each account's niches as JSON kept by triggers instead of building it per
read. Every kind of write that can change it (sign-ups, a niche set replaced, links
added, removed and moved in bulk, a niche renamed, accounts deleted, a TRUNCATE) must
leave the kept JSON equal to two independent answers: the JSON built here in Python
from the links and niches, and what `cloutsy_niche_refs_rebuild()` writes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from peewee import OperationalError

from cloutsy.catalogue import NICHES, seed_niches
from cloutsy.db import connection_url
from cloutsy.kinds import KINDS
from cloutsy.models import Niche
from cloutsy.services import sessions
from tests.helpers import Background, brand_body, influencer_body, lock_waiters, wait_until

Refs = dict[str, dict[int, list[dict[str, Any]]]]


def kept(db: Any) -> Refs:
    """Every kind's refs rows as {owner: parsed JSON}; a row whose text is not compact fails."""
    out: Refs = {}
    for kind in KINDS.values():
        rows = db.execute_sql(
            f"SELECT {kind.link_column}, niches::text FROM {kind.refs_table}"
        ).fetchall()
        for owner, text in rows:
            parsed = json.loads(text)
            assert text == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
            assert parsed, f"{kind.refs_table} keeps an empty set for {owner}"
        out[kind.name] = {owner: json.loads(text) for owner, text in rows}
    return out


def expected(db: Any) -> Refs:
    """The same, built in Python from the link and niche tables (no trigger involved)."""
    niches = {
        i: {"id": i, "name": name, "slug": slug, "icon": icon}
        for i, name, slug, icon in db.execute_sql("SELECT id, name, slug, icon FROM niches")
    }
    out: Refs = {}
    for kind in KINDS.values():
        sets: dict[int, list[dict[str, Any]]] = {}
        for owner, niche in db.execute_sql(
            f"SELECT {kind.link_column}, niche_id FROM {kind.link_table} ORDER BY 1, 2"
        ):
            sets.setdefault(owner, []).append(niches[niche])
        out[kind.name] = sets
    return out


def rebuilt(db: Any) -> Refs:
    """What a full rebuild writes, without keeping it (a savepoint rolled back)."""
    with db.atomic() as savepoint:
        db.execute_sql("SELECT cloutsy_niche_refs_rebuild()")
        out = kept(db)
        savepoint.rollback()
    return out


def check(db: Any, step: str) -> Refs:
    now = kept(db)
    assert now == expected(db), f"niche refs differ from the links after: {step}"
    assert now == rebuilt(db), f"niche refs differ from a rebuild after: {step}"
    return now


INSERT_INFLUENCERS = """
INSERT INTO influencers (name, username, email, phone)
SELECT 'person ' || i, 'refs' || i, 'refs' || i || '@example.com', '+9190' || lpad(i::text, 8, '0')
  FROM generate_series(1, 60) i
"""
INSERT_LINKS = """
INSERT INTO influencer_niches (influencer_id, niche_id)
SELECT a.id, n.id FROM influencers a JOIN niches n ON n.id <= 1 + a.id %% 4 + (a.id %% 3)
 WHERE a.username LIKE 'refs%%'
"""


def test_niche_refs_equal_the_links_through_every_kind_of_write(db):
    check(db, "nothing yet")
    db.execute_sql(INSERT_INFLUENCERS)
    db.execute_sql(INSERT_LINKS)
    db.execute_sql(
        "INSERT INTO brands (email, password, phone, brand_name, username) "
        "SELECT 'rb' || i || '@example.com', 'x', '+9191' || lpad(i::text, 8, '0'), "
        "'Brand ' || i, 'rb' || i FROM generate_series(1, 12) i"
    )
    db.execute_sql(
        "INSERT INTO brand_niches (brand_id, niche_id) SELECT b.id, n.id FROM brands b "
        "JOIN niches n ON n.id IN (2, 3, 2 + b.id %% 5) WHERE b.username LIKE 'rb%%'"
    )
    grown = check(db, "bulk inserts")
    assert len(grown["influencer"]) == 60 and len(grown["brand"]) == 12

    db.execute_sql("DELETE FROM influencer_niches WHERE niche_id = 2 AND influencer_id %% 2 = 0")
    db.execute_sql(
        "UPDATE influencer_niches SET niche_id = 20 WHERE niche_id = 1 AND influencer_id %% 3 = 0"
    )
    db.execute_sql(  # every link of some accounts goes: their refs row goes with them
        "DELETE FROM influencer_niches WHERE influencer_id IN "
        "(SELECT id FROM influencers WHERE username LIKE 'refs%%7')"
    )
    after = check(db, "links removed, moved to another niche, and emptied")
    assert len(after["influencer"]) < 60

    db.execute_sql("UPDATE niches SET name = 'Fashion & Style', icon = '🧥' WHERE slug = 'fashion'")
    db.execute_sql("UPDATE niches SET description = 'not in a ref' WHERE slug = 'beauty'")
    renamed = check(db, "a niche renamed, another's description changed")
    names = {n["name"] for refs in renamed["influencer"].values() for n in refs}
    assert "Fashion & Style" in names and "Fashion" not in names

    db.execute_sql("DELETE FROM influencers WHERE username LIKE 'refs%%3'")
    db.execute_sql("DELETE FROM brands WHERE id %% 4 = 0")
    check(db, "accounts deleted (their links cascade)")

    db.execute_sql("TRUNCATE brand_niches")
    assert check(db, "TRUNCATE of a link table")["brand"] == {}


def test_the_api_shows_niche_changes_at_once(client, db, admin_headers):
    fashion, food = (Niche.get(Niche.slug == s).id for s in ("fashion", "food"))
    body = influencer_body(1, tag="refs", nicheIds=[food, fashion])
    person = client.post_json("/influencers", body, status=201).json
    assert [n["slug"] for n in person["niches"]] == ["fashion", "food"]  # by niche id
    brand = client.post_json("/brands", brand_body(1, nicheIds=[food]), status=201).json
    assert [n["slug"] for n in brand["niches"]] == ["food"]
    assert client.get(f"/brands/{brand['id']}").json["niches"] == brand["niches"]

    auth = {"Authorization": f"Bearer {sessions.issue('influencer', person['id'])[0]}"}
    client.put_json(f"/influencers/{person['id']}/niches", {"nicheIds": [food]}, headers=auth)
    assert [n["slug"] for n in client.get(f"/influencers/{person['id']}").json["niches"]] == [
        "food"
    ]
    assert [
        n["slug"] for n in client.get(f"/influencers/{person['id']}", headers=auth).json["niches"]
    ] == ["food"]  # the private view too

    # The catalogue's upsert renames a niche: every view and page shows the new name.
    catalogue = tuple(
        ("Food & Drink", slug, icon, about) if slug == "food" else (name, slug, icon, about)
        for name, slug, icon, about in NICHES
    )
    assert seed_niches(catalogue).updated == 1
    view = client.get(f"/influencers/{person['id']}").json
    icon = next(icon for _, slug, icon, _ in NICHES if slug == "food")
    assert view["niches"] == [{"id": food, "name": "Food & Drink", "slug": "food", "icon": icon}]
    page = client.get("/influencers", {"niche": "food"}).json["items"]
    assert [p["niches"] for p in page if p["id"] == person["id"]] == [view["niches"]]

    client.put_json(f"/influencers/{person['id']}/niches", {"nicheIds": []}, headers=auth)
    assert client.get(f"/influencers/{person['id']}").json["niches"] == []
    check(db, "sign-ups, a replaced set, a renamed niche and an emptied set through the API")


def test_a_rename_that_rewrites_many_accounts_is_not_cut_by_the_app_timeout(db):
    """The catalogue's upsert has its own statement timeout: a rename rewrites the refs of
    every account in the niche (seconds for the largest niche at a million accounts)."""
    db.execute_sql(
        "INSERT INTO influencers (name, username, email, phone) SELECT 'p' || i, 'many' || i, "
        "'many' || i || '@example.com', '+9192' || lpad(i::text, 8, '0') "
        "FROM generate_series(1, 8000) i"
    )
    db.execute_sql(
        "INSERT INTO influencer_niches (influencer_id, niche_id) SELECT a.id, n.id "
        "FROM influencers a, niches n WHERE a.username LIKE 'many%%' AND n.slug = 'music'"
    )
    renamed = tuple(
        ("Music & Audio", s, i, d) if s == "music" else (n, s, i, d) for n, s, i, d in NICHES
    )
    with db.atomic() as control:  # the app role's kind of limit, far below the rewrite
        db.execute_sql("SET LOCAL statement_timeout = '20ms'")
        with pytest.raises(OperationalError, match="statement timeout"):
            db.execute_sql("UPDATE niches SET name = 'Music & Audio' WHERE slug = 'music'")
        control.rollback()
    with db.atomic():
        db.execute_sql("SET LOCAL statement_timeout = '20ms'")
        assert seed_niches(renamed).updated == 1
    names = db.execute_sql(
        "SELECT DISTINCT niches->0->>'name' FROM influencer_niche_refs r "
        "JOIN influencers a ON a.id = r.influencer_id WHERE a.username LIKE 'many%%'"
    ).fetchall()
    assert names == [("Music & Audio",)]


# --- concurrent writers (real commits, two sessions) -----------------------------------------


@contextlib.contextmanager
def session(settings: Any) -> Iterator[Any]:
    """A second session on the suite's database as the app, in a transaction of its own."""
    conn = psycopg2.connect(connection_url(settings))
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _one_influencer(committed: Any, name: str, niche_slug: str) -> tuple[int, int]:
    with committed.connection_context():
        row = committed.execute_sql(
            "INSERT INTO influencers (name, username, email, phone) "
            "VALUES (%s, %s, %s, '+919000000001') RETURNING id",
            (name, name.lower(), f"{name.lower()}@example.com"),
        ).fetchone()
        niche = committed.execute_sql("SELECT id FROM niches WHERE slug = %s", (niche_slug,))
        return row[0], niche.fetchone()[0]


def test_a_niche_changed_while_a_link_to_it_is_written_shows_the_change(committed, settings):
    """The link's transaction read the old icon; the change waits for it, then rewrites it.

    A plain UPDATE of the icon, as an operator would type it: the catalogue's upsert (ON
    CONFLICT locks the row) and a new name (a unique column) already wait for the link's
    foreign-key lock on the niche row; this is the change nothing else would hold back.
    """
    person, food = _one_influencer(committed, "Racer", "food")
    uri = connection_url(settings)
    with session(settings) as linker, session(settings) as operator:
        linker.cursor().execute(
            "INSERT INTO influencer_niches (influencer_id, niche_id) VALUES (%s, %s)",
            (person, food),
        )
        changing = Background(
            lambda: operator.cursor().execute(
                "UPDATE niches SET icon = '🥘' WHERE id = %s", (food,)
            )
        )
        wait_until(lambda: lock_waiters(uri) >= 1, what="the change to wait for the link writer")
        assert not changing.done()
        linker.commit()
        changing.result()
        operator.commit()
    with committed.connection_context():
        assert check(committed, "a niche change racing a link")["influencer"][person][0] == {
            "id": food,
            "name": "Food",
            "slug": "food",
            "icon": "🥘",
        }


def test_two_transactions_adding_links_to_one_account_keep_both(committed, settings):
    """Each wrote the set its own snapshot saw; the second waits for the first, then reads it."""
    person, food = _one_influencer(committed, "Twice", "food")
    with committed.connection_context():
        music = committed.execute_sql("SELECT id FROM niches WHERE slug = 'music'").fetchone()[0]
    uri = connection_url(settings)
    insert = "INSERT INTO influencer_niches (influencer_id, niche_id) VALUES (%s, %s)"
    with session(settings) as first, session(settings) as second:
        first.cursor().execute(insert, (person, food))
        adding = Background(lambda: second.cursor().execute(insert, (person, music)))
        wait_until(lambda: lock_waiters(uri) >= 1, what="the second writer to wait for the first")
        first.commit()
        adding.result()
        second.commit()
    with committed.connection_context():
        kept_now = check(committed, "two concurrent link writers on one account")
        assert [n["slug"] for n in kept_now["influencer"][person]] == ["food", "music"]
