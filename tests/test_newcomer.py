"""What a newcomer notices first in the answers: every taken field named, compact JSON."""

from __future__ import annotations

import json

import pytest

from cloutsy import integrity
from cloutsy.models import Brand, Influencer
from cloutsy.services import sessions
from tests.helpers import brand_body, influencer_body


def test_a_sign_up_whose_values_are_all_taken_names_every_field(client):
    client.post_json("/influencers", influencer_body(1), status=201)
    taken = influencer_body(
        2, username="Creator1", email="CREATOR1@example.com", phone="9876500001"
    )
    r = client.post_json("/influencers", taken, status=409)
    error = r.json["error"]
    assert error["code"] == "conflict"
    assert [d["field"] for d in error["details"]] == ["username", "email", "phone"]
    assert error["message"] == "username, email and phone are already taken"


def test_two_taken_values_of_a_brand_are_both_named(client):
    client.post_json("/brands", brand_body(1), status=201)
    taken = brand_body(2, email="Brand1@example.com", username="brand1")
    r = client.post_json("/brands", taken, status=409)
    assert [d["field"] for d in r.json["error"]["details"]] == ["email", "username"]
    assert r.json["error"]["message"] == "email and username are already taken"


def test_one_taken_value_is_still_one_detail(client):
    client.post_json("/influencers", influencer_body(1), status=201)
    r = client.post_json(
        "/influencers", influencer_body(2, email="creator1@example.com"), status=409
    )
    assert r.json["error"]["details"] == [{"field": "email", "message": "email is already taken"}]


def test_an_edit_to_taken_values_names_each_and_not_the_accounts_own(client):
    first = client.post_json("/influencers", influencer_body(1), status=201).json
    client.post_json("/influencers", influencer_body(2), status=201)
    auth = {"Authorization": f"Bearer {sessions.issue('influencer', first['id'])[0]}"}
    change = {"username": "CREATOR2", "email": "creator2@example.com", "phone": "9876500001"}
    r = client.patch_json(f"/influencers/{first['id']}", change, headers=auth, status=409)
    # phone 9876500001 is the account's own: only the other two are taken.
    assert [d["field"] for d in r.json["error"]["details"]] == ["username", "email"]


@pytest.mark.parametrize("model", [Influencer, Brand])
def test_the_conflict_check_is_one_statement_over_every_unique_column(db, model, queries):
    checks = integrity.unique_checks(model)
    assert sorted(integrity.UNIQUE_FIELDS[name] for name, _, _ in checks) == [
        "email",
        "phone",
        "username",
    ]
    values = {"username": "nobody", "email": "nobody@example.com", "phone": "+919800000000"}
    with queries:
        assert integrity.taken_fields(model, values) == []
    assert queries.count == 1


def test_json_built_by_postgresql_is_compact_like_every_other_answer(client):
    created = client.post_json("/influencers", influencer_body(1), status=201)
    for res in (
        created,
        client.get(f"/influencers/{created.json['id']}"),
        client.get("/influencers?limit=5"),
        client.get("/niches"),
        client.get("/niches/fashion"),
        client.get("/health"),
    ):
        text = res.body.decode()
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    detail = client.get(f"/influencers/{created.json['id']}").body.decode()
    assert detail.startswith('{"id":'), detail[:40]


@pytest.mark.slow
def test_the_readme_curl_session_runs_as_written(pool, tmp_path):
    """The README's copy-paste sequence, against a real server: every step answers."""
    import re
    import subprocess

    from tests.conftest import truncate_all
    from tests.engines import start_server
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"### A first session with `curl`.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README lost its curl session"
    truncate_all(pool)
    server = start_server(tmp_path)
    try:
        script = block.group(1).replace("http://127.0.0.1:8080", server.url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script + "\necho; echo ID=$ID"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        edited, brand, login, tail = done.stdout.replace("}{", "}\n{").splitlines()[-4:]
        assert json.loads(edited)["bio"] == "Street food in Pune"
        assert json.loads(edited)["isPhoneVerified"] is True
        assert json.loads(brand)["username"] == "chai.co"
        assert set(json.loads(login)) == {"token", "expiresAt"}
        assert tail.startswith("ID=")
    finally:
        server.stop()
        truncate_all(pool)
