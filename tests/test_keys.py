"""Key management: generate, status per key id, rotation k1 -> k2 while the service runs."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading

import pytest

from cloutsy import crypto, keys
from cloutsy.api import create_app
from cloutsy.config import parse_data_keys, parse_rate_limits
from cloutsy.db import database
from tests.helpers import ROOT
from tests.leak_check import checked_test_app

K1 = "k1:" + base64.b64encode(b"\x11" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x22" * 32).decode()


@pytest.fixture
def with_keys(app_settings):
    """Use other data keys for a test; the suite's keys come back afterwards."""

    def use(raw: str):
        # Many sign-ups from one test address: its sign-up limit is not what is tested here.
        settings = app_settings.with_overrides(
            data_keys=parse_data_keys(raw), rate_limits=parse_rate_limits("signup_address=off")
        )
        crypto.configure(settings)
        return settings

    yield use
    crypto.configure(app_settings)


def test_generate_makes_a_key_the_settings_accept():
    made = keys.generate("k7")
    assert parse_data_keys(made)[0][0] == "k7" and len(parse_data_keys(made)[0][1]) == 32
    assert keys.generate() != keys.generate()
    assert keys.generate().startswith("k20")  # dated id


def _sign_up(client, n: int) -> int:
    body = {
        "name": f"Rot {n}",
        "username": f"rot{n}",
        "email": f"rot{n}@example.com",
        "phone": f"+91981{n:07d}",
        "dateOfBirth": "1990-02-03",
    }
    return client.post_json("/influencers", body, status=201).json["id"]


def _brand(client, n: int) -> int:
    body = {
        "email": f"rotb{n}@example.com",
        "password": "correct horse battery",
        "phone": f"+91881{n:07d}",
        "brandName": f"Rot {n}",
        "username": f"rotb{n}",
        "pocName": f"Poc {n}",
    }
    return client.post_json("/brands", body, status=201).json["id"]


def _private(client, account_id: int, settings, kind: str = "influencers") -> dict:
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    return client.get(f"/{kind}/{account_id}", headers=headers, status=200).json


def test_status_counts_values_per_key_id(db, with_keys, app_settings, wsgi_app, suite_secrets):
    client = checked_test_app()(wsgi_app, suite_secrets)
    with_keys(K1)
    _sign_up(client, 1)  # email, phone, date of birth
    with_keys(f"{K2},{K1}")
    _sign_up(client, 2)
    assert keys.status()["influencers"] == {"k1": 3, "k2": 3}


def test_rotation_under_load_loses_nothing(committed, with_keys, app_settings, suite_secrets):
    settings = with_keys(K1)
    app = create_app(settings)
    client = checked_test_app()(app, suite_secrets)
    with database.connection_context():
        before = [_sign_up(client, n) for n in range(60)]
        brand = _brand(client, 1)
    assert keys.status()["influencers"] == {"k1": 180}

    settings = with_keys(f"{K2},{K1}")  # k2 now encrypts; k1 still decrypts
    app = create_app(settings)
    errors: list[str] = []
    written: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        load = checked_test_app()(app, suite_secrets)
        n = 1000
        while not stop.is_set():
            try:
                written.append(_sign_up(load, n))
                for account_id in (before[n % 60], written[-1]):
                    view = _private(load, account_id, settings)
                    assert view["email"].startswith("rot") and view["dateOfBirth"] == "1990-02-03"
            except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
                errors.append(repr(exc)[:200])
            n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        seen: list[tuple[str, int, int]] = []
        changed = keys.rotate(batch=7, progress=lambda *step: seen.append(step))
    finally:
        stop.set()
        worker.join(30)
    assert errors == []
    assert changed >= 61 and written  # every old row, while sign-ups went on
    assert seen[-1][1] == seen[-1][2]  # progress reached its total
    assert keys.rotate() == 0  # nothing left: a rerun (or a resumed run) has no work
    status = keys.status()
    assert set(status["influencers"]) == {"k2"} and set(status["brands"]) == {"k2"}

    # The service with k2 only: everything still reads, nothing was lost.
    settings = with_keys(K2)
    client = checked_test_app()(create_app(settings), suite_secrets)
    with database.connection_context():
        for account_id in before + written:
            assert _private(client, account_id, settings)["phone"].startswith("+91981")
        assert _private(client, brand, settings, "brands")["pocName"] == "Poc 1"
        count = database.execute_sql("SELECT count(*) FROM influencers").fetchone()[0]
    assert count == len(before) + len(written)


def test_a_killed_rotation_resumes(committed, with_keys, app_settings, suite_secrets):
    settings = with_keys(K1)
    client = checked_test_app()(create_app(settings), suite_secrets)
    with database.connection_context():
        for n in range(10):
            _sign_up(client, n)
    with_keys(f"{K2},{K1}")

    class Killed(Exception):
        pass

    def kill_after_first_batch(table, done, total):
        if done:
            raise Killed

    with pytest.raises(Killed):
        keys.rotate(batch=4, progress=kill_after_first_batch)
    assert keys.status()["influencers"] == {"k1": 18, "k2": 12}  # one batch of 4 rows done
    assert keys.rotate(batch=4) == 6
    assert keys.status()["influencers"] == {"k2": 30}


# --- the tasks, as a person runs them -----------------------------------------------------------


def _invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tasks_generate_count_erase_and_make_roles(committed, app_settings, suite_secrets):
    made = _invoke("keys.generate", "--key-id", "k9")
    assert made.returncode == 0 and parse_data_keys(made.stdout.strip())[0][0] == "k9"
    assert _invoke("keys.generate", "--key-id", "bad id!").returncode == 1

    client = checked_test_app()(create_app(app_settings), suite_secrets)
    with database.connection_context():
        person = _sign_up(client, 5)
    status = _invoke("keys.status")
    assert status.returncode == 0 and "influencers: dev: 3" in status.stdout

    erased = _invoke("accounts.erase", "influencer", str(person))
    assert erased.returncode == 0 and f"influencer {person} erased" in erased.stdout
    with database.connection_context():
        row = database.execute_sql(
            "SELECT email, erased_at FROM influencers WHERE id = %s", (person,)
        ).fetchone()
    assert row[0] is None and row[1] is not None
    again = _invoke("accounts.erase", "influencer", str(person))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == "error: no such influencer"
    assert _invoke("accounts.erase", "robot", "1").returncode == 1

    roles_made = _invoke("db.roles")
    assert roles_made.returncode == 0 and "cloutsy_app (the service)" in roles_made.stdout
