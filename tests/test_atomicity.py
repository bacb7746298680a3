"""Multi-table writes are all or nothing: a failure injected between their statements
leaves no partial rows (real commits here, no outer test transaction).
"""

from __future__ import annotations

import pytest
from webtest import TestApp

from cloutsy.models import Influencer, InfluencerNiche, Niche, Otp, Session
from cloutsy.services import otp as otp_service
from cloutsy.services.lookup import otp_key


class Injected(RuntimeError):
    """The failure a test injects between two statements of a write."""


@pytest.fixture
def app(committed, wsgi_app):
    return TestApp(wsgi_app)


def niche_ids(*slugs):
    with Niche._meta.database.connected():
        return [Niche.get(Niche.slug == s).id for s in slugs]


def counts():
    db = Niche._meta.database
    with db.connected():
        return (Influencer.select().count(), InfluencerNiche.select().count(),
                Session.select().count())  # fmt: skip


def assert_internal_error(response):
    assert response.status_int == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "Injected" not in response.text


def test_sign_up_failing_after_the_account_insert_leaves_nothing(app, monkeypatch):
    from cloutsy.services import accounts

    original = accounts.link_niches

    def link_then_fail(*args, **kwargs):
        original(*args, **kwargs)  # the account row and its links are written...
        raise Injected("between statements")  # ...then the transaction fails

    monkeypatch.setattr(accounts, "link_niches", link_then_fail)
    body = {"name": "Half", "username": "half.done", "email": "half@example.com",
            "phone": "9811111111", "nicheIds": niche_ids("food", "travel")}  # fmt: skip
    assert_internal_error(app.post_json("/influencers", body, expect_errors=True))
    assert counts() == (0, 0, 0)


def _signed_up_with_token(app):
    body = {"name": "Whole", "username": "whole.one", "email": "whole@example.com",
            "phone": "9822222222", "nicheIds": niche_ids("food", "travel")}  # fmt: skip
    person = app.post_json("/influencers", body).json
    code = app.post_json("/auth/otp/send", {"phone": body["phone"]}, status=202).json["debugOtp"]
    token = app.post_json("/auth/otp/verify", {"phone": body["phone"], "otp": code}).json["token"]
    return person, body["phone"], {"Authorization": f"Bearer {token}"}


def test_niche_replacement_failing_after_the_delete_keeps_the_old_set(app, monkeypatch):
    person, _, auth = _signed_up_with_token(app)
    before = sorted(n["id"] for n in person["niches"])

    def fail(*args, **kwargs):
        raise Injected("after the stale links were deleted")

    monkeypatch.setattr(InfluencerNiche, "insert_many", fail)
    new = niche_ids("gaming", "music")
    response = app.put_json(f"/influencers/{person['id']}/niches", {"nicheIds": new},
                            headers=auth, expect_errors=True)  # fmt: skip
    assert_internal_error(response)
    monkeypatch.undo()
    after = app.get(f"/influencers/{person['id']}").json["niches"]
    assert sorted(n["id"] for n in after) == before


def test_otp_verification_failing_before_the_session_leaves_the_code_usable(app, monkeypatch):
    body = {"name": "Ver", "username": "ver.ify", "email": "ver@example.com",
            "phone": "9833333333"}  # fmt: skip
    person = app.post_json("/influencers", body).json
    code = app.post_json("/auth/otp/send", {"phone": body["phone"]}, status=202).json["debugOtp"]

    def fail(*args, **kwargs):
        raise Injected("after the code was used and the phone marked verified")

    monkeypatch.setattr(otp_service.sessions, "issue", fail)
    response = app.post_json("/auth/otp/verify", {"phone": body["phone"], "otp": code},
                             expect_errors=True)  # fmt: skip
    assert_internal_error(response)
    db = Niche._meta.database
    with db.connected():
        assert Influencer.get_by_id(person["id"]).is_phone_verified is False
        assert Otp.select().where(Otp.phone == otp_key("+919833333333"), Otp.is_used).count() == 0
        assert Session.select().count() == 0
    monkeypatch.undo()
    # Nothing was half-done: the same code still verifies.
    ok = app.post_json("/auth/otp/verify", {"phone": body["phone"], "otp": code}).json
    assert ok["verified"] is True and ok["account"] == {"type": "influencer", "id": person["id"]}
