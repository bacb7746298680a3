"""No secret reaches a log line: OTP codes, tokens, passwords, full phone numbers.

The main test drives a whole account flow with the production logging set-up
(`configure_logging`, peewee's query log on as in development) plus pytest's own capture,
and fails if any secret it created appears in either. The suite as a whole is checked
too, test by test (tests/leak_check.py, proven below); the real server's log is checked in
test_server.py.
"""

from __future__ import annotations

import io
import logging
import re

import pytest

from cloutsy import logs
from cloutsy.logs import mask_phone, redact
from tests.conftest import ADMIN_TOKEN
from tests.helpers import ROOT

LOGGERS = ("", "peewee", "peewee.pool", "pgserver", "cloutsy", "_granian", "granian.access")


@pytest.fixture
def production_logging(settings):
    """`configure_logging` as the server runs it (query log on), into a buffer; undone after."""
    saved = {
        name: (lg.level, list(lg.handlers), list(lg.filters))
        for name in LOGGERS
        for lg in [logging.getLogger(name)]
    }
    buffer = io.StringIO()
    logs.configure_logging(settings, stream=buffer, query_log=True)
    logging.getLogger("cloutsy").setLevel(logging.DEBUG)
    yield buffer
    for name, (level, handlers, filters) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.filters[:] = filters


def found_in(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets that occur in `text` (6-digit codes as whole numbers)."""
    leaked = []
    for name, value in secrets.items():
        if name.startswith("code"):
            if re.search(rf"(?<![0-9A-Za-z]){value}(?![0-9A-Za-z])", text):
                leaked.append(name)
        elif value in text:
            leaked.append(name)
    return leaked


def test_a_whole_account_flow_leaves_no_secret_in_the_logs(
    client, production_logging, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    password = "brand-password-do-not-log"
    person = {
        "name": "Leak",
        "username": "leak",
        "email": "leak@example.com",
        "phone": "9811100001",
    }
    person_id = client.post_json("/influencers", person, status=201).json["id"]
    brand = {
        "email": "leak.brand@example.com",
        "password": password,
        "phone": "8811100001",
        "brandName": "Leak",
        "username": "leak.brand",
    }
    brand_id = client.post_json("/brands", brand, status=201).json["id"]

    code = client.post_json("/auth/otp/send", {"phone": "9811100001"}, status=202).json["debugOtp"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    client.post_json("/auth/otp/verify", {"phone": "9811100001", "otp": wrong}, status=400)
    token = client.post_json("/auth/otp/verify", {"phone": "9811100001", "otp": code}).json["token"]
    auth = {"Authorization": f"Bearer {token}"}
    login = {"email": "leak.brand@example.com", "password": password}
    brand_token = client.post_json("/auth/brands/login", login).json["token"]
    client.post_json("/auth/brands/login", dict(login, password="wrong-password-1"), status=401)

    client.patch_json(f"/influencers/{person_id}", {"phone": "9811100002"}, headers=auth)
    client.get("/me", headers={"Authorization": f"Bearer {brand_token}"})
    client.get("/me", headers={"Authorization": "Bearer not-a-real-token-0123456789"}, status=401)
    # An unexpected database error is logged with its traceback: psycopg2's DETAIL holds
    # the phone ("Key (phone)=(+91…) already exists"), which must come out masked.
    monkeypatch.setattr("cloutsy.integrity.error_from", lambda exc: None)
    # (The phone 9811100001 was proved above, so a second sign-up with it violates the index.)
    other = dict(person, username="leak2", email="leak2@example.com")
    client.post_json("/influencers", other, status=500)
    client.post("/auth/logout", headers=auth, status=204)
    client.delete(f"/brands/{brand_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    secrets = {
        "code": code,
        "code (wrong)": wrong,
        "token": token,
        "brand token": brand_token,
        "admin token": ADMIN_TOKEN,
        "password": password,
        "wrong password": "wrong-password-1",
        "invalid token": "not-a-real-token-0123456789",
    }
    for n, number in enumerate(("9811100001", "8811100001", "9811100002", "9811100003")):
        secrets[f"phone {n}"] = number
        secrets[f"phone {n} (E.164)"] = f"+91{number}"

    server_log = production_logging.getvalue()
    assert found_in(server_log, secrets) == []
    assert found_in(caplog.text, secrets) == []
    # The check is real: the query log, the sender's line and the traceback are all there.
    assert 'INSERT INTO "otps"' in server_log and "params: [<str>, <str>" in server_log
    assert f"verification code sent to {mask_phone('+919811100001')}" in server_log
    # The taken phone is found through its blind index: the violation names the digest.
    assert "UniqueViolation" in server_log and "(phone_digest)=" in server_log


def test_records_are_redacted_for_every_logger_and_every_handler():
    """Child loggers, third-party loggers and handlers without the filter included."""
    logs.redact_every_record()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # no RedactingFilter on purpose
    for name in ("cloutsy.services.deep.child", "some.library"):
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        try:
            lg.info("user +919811122233 sent Authorization: Bearer abc.def-ghi password=hunter22")
            lg.warning("payload %s", {"otp": "123456", "token": "tok-xyz", "phone": "9811122233"})
        finally:
            lg.removeHandler(handler)
            lg.setLevel(logging.NOTSET)
    text = buffer.getvalue()
    for secret in ("+919811122233", "9811122233", "abc.def-ghi", "hunter22", "123456", "tok-xyz"):
        assert secret not in text
    assert "+91******2233" in text


def test_server_access_lines_are_redacted_even_with_headers_in_the_format():
    """granian's shipped format logs no header or query string; a changed one leaks nothing."""
    logs.redact_every_record()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    access = logging.getLogger("granian.access")  # the logger granian's access log uses
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    atoms = {  # the mapping granian builds for each request (granian/log.py)
        "addr": "127.0.0.1",
        "method": "GET",
        "path": "/influencers",
        "query_string": "token=sekrit-token&otp=654321",
        "_h0": "Bearer sekrit-bearer",
        "status": 200,
    }
    try:
        access.info('%(addr)s "%(method)s %(path)s?%(query_string)s" %(status)d %(_h0)s', atoms)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    line = buffer.getvalue()
    assert "127.0.0.1" in line and "200" in line
    for secret in ("sekrit-token", "654321", "sekrit-bearer"):
        assert secret not in line


def test_peewee_query_parameters_are_logged_as_types():
    record = logging.LogRecord(
        "peewee", logging.DEBUG, __file__, 1, ('UPDATE "brands" SET "password" = %s', ["$argon2"]),
        None, None,
    )  # fmt: skip
    logs.RedactingFilter().filter(record)
    assert record.getMessage() == 'UPDATE "brands" SET "password" = %s -- params: [<str>]'
    named = logging.LogRecord(
        "peewee", logging.DEBUG, __file__, 1, ("SELECT %(q)s", {"q": "secret", "n": 5}), None, None
    )
    logs.RedactingFilter().filter(named)
    assert named.getMessage() == "SELECT %(q)s -- params: [q=<str>, n=5]"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ('{"token":"abc123def456"}', "abc123def456", '"token":'),
        ('{"debugOtp": "123456"}', "123456", "debugOtp"),
        ("phone 9812345678 and +14155550123", "9812345678", "5678"),
        ("request 0123456789abcdef0123456789abcdef", "", "0123456789abcdef0123456789abcdef"),
    ],
)
def test_redact(text, hidden, kept):
    out = redact(text)
    assert kept in out
    if hidden:
        assert hidden not in out


LEAKY_SUITE = """
import logging

log = logging.getLogger("cloutsy.tiny")


def test_quiet(suite_secrets):
    suite_secrets.note_token("quiet-token-0123456789")
    log.info("nothing secret here")


def test_leaky(suite_secrets):
    suite_secrets.note_token("leaky-token-0123456789")
    log.info("the token is leaky-token-0123456789")


def test_logs_before_it_is_known(suite_secrets):
    log.info("the token is late-token-0123456789")


def test_notes_it_later(suite_secrets):
    suite_secrets.note_token("late-token-0123456789")
"""


def test_the_log_check_fails_the_test_that_leaked(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_tiny=LEAKY_SUITE)
    result = pytester.runpytest_subprocess("-p", "tests.leak_check")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout
    out.fnmatch_lines(["FAILED test_tiny.py::test_leaky - secrets reached the log*"])
    out.fnmatch_lines(["*secrets reached the log during call: *leaky-*"])
    out.fnmatch_lines(["LEAKED test_tiny.py::test_logs_before_it_is_known: *late-t*"])
    assert "test_quiet -" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
