"""The per-worker niche catalogue copy: built once per period, shared, dropped on seed."""

from __future__ import annotations

import threading

import pytest
from webtest import TestApp

from cloutsy.api import create_app
from cloutsy.api.niche_cache import NicheCache
from cloutsy.config import ConfigError, load_settings
from cloutsy.models import Niche
from tests.helpers import Background, wait_until

BODY = (
    '{"items":[{"id":3,"name":"Food","slug":"food","icon":null,"description":null,'
    '"influencerCount":1,"brandCount":0}]}'
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_copy_is_rebuilt_only_after_its_period():
    clock, builds = Clock(), []

    def build() -> str:
        builds.append(clock.now)
        return BODY

    cache = NicheCache(10, build, clock)
    assert cache.catalogue() == (BODY.encode(), 0)
    clock.now += 9.5
    assert cache.catalogue() == (BODY.encode(), 9)
    assert cache.niche("food")[0] == cache.niche("3")[0] == cache.niche("003")[0]
    assert cache.niche("nope")[0] is None and cache.niche("4")[0] is None
    assert len(builds) == 1
    clock.now += 0.5
    assert cache.catalogue()[1] == 0 and len(builds) == 2
    cache.clear()
    cache.catalogue()
    assert len(builds) == 3


class CountingLock:
    """A lock that counts the threads waiting for it, so a test can see them queue."""

    def __init__(self) -> None:
        self.lock, self.counting, self.waiting = threading.Lock(), threading.Lock(), 0

    def _count(self, step: int) -> None:
        with self.counting:
            self.waiting += step

    def __enter__(self) -> None:
        self._count(1)
        self.lock.acquire()
        self._count(-1)

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_threads_share_one_build():
    builds = []
    release = threading.Event()

    def slow_build() -> str:
        builds.append(1)
        release.wait(10)
        return BODY

    cache = NicheCache(10, slow_build)
    cache.lock = CountingLock()
    first = Background(cache.catalogue)
    wait_until(lambda: builds, what="the first build to start")
    others = [Background(cache.catalogue) for _ in range(7)]
    wait_until(lambda: cache.lock.waiting == 7, what="seven threads queued behind the build")
    release.set()
    assert {run.result()[0] for run in (first, *others)} == {BODY.encode()}
    assert len(builds) == 1


def test_the_period_never_outlives_max_age():
    assert load_settings({}).niches_cache_s == 10
    assert load_settings({"CLOUTSY_NICHES_CACHE_S": "0"}).niches_cache_s == 0
    with pytest.raises(ConfigError, match="CLOUTSY_NICHES_CACHE_S"):
        load_settings({"CLOUTSY_NICHES_CACHE_S": "61"})


@pytest.fixture(scope="module")
def cached_app(pool, app_settings):
    return create_app(app_settings.with_overrides(niches_cache_s=30.0))


def test_niches_are_served_from_the_copy_until_this_worker_seeds(
    db, cached_app, queries, admin_headers
):
    app = TestApp(cached_app)
    app.post("/seed/niches", headers=admin_headers)  # start from a fresh copy
    fashion = Niche.get(Niche.slug == "fashion").id
    before = app.get("/niches")
    assert int(before.headers["Age"]) <= 30
    assert before.headers["Cache-Control"] == "public, max-age=60"
    count = {n["slug"]: n for n in before.json["items"]}["fashion"]["influencerCount"]
    body = {"name": "C", "username": "cached", "email": "c@example.com", "phone": "9812300066"}
    app.post_json("/influencers", {**body, "nicheIds": [fashion]}, status=201)
    with queries as q:
        again = app.get("/niches")
        one = app.get(f"/niches/{fashion}")
        by_slug = app.get("/niches/fashion", headers={"If-None-Match": one.headers["ETag"]})
    assert q.count == 0  # no SQL: the copy answered
    assert again.body == before.body
    assert one.json["influencerCount"] == count and by_slug.status_int == 304
    assert app.get("/niches/no-such-niche", status=404).json["error"]["code"] == "not_found"
    app.post("/seed/niches", headers=admin_headers)
    after = {n["slug"]: n for n in app.get("/niches").json["items"]}
    assert after["fashion"]["influencerCount"] == count + 1
