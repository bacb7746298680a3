"""The suite-wide secrets check: no response holds a password, no log line a secret.

A pytest plugin (conftest registers it). From the first test that uses `suite_secrets` (every
`client` does) to the end of the run, every log record is captured, redacted as in
production. After each phase of each test, the lines logged during it are searched for
every secret noted so far (phones, OTP codes, tokens, passwords sent or received through a
`CheckedTestApp`): a hit fails that test, by name. A line that only turns out to be secret
later (the same phone noted by a later test) fails the run at the end, naming the test
that logged it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Generator, Iterator
from typing import Any

import pytest

PHONE_RUN = re.compile(r"\+?\d{8,15}")
CODE_RUN = re.compile(r"(?<![0-9A-Za-z])\d{6}(?![0-9A-Za-z])")


def _json_leaks(value: Any, passwords: set[str], path: str = "$") -> list[str]:
    """Where a JSON value holds a `password` key, a known password or a password hash."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if "password" in str(key).lower():
                found.append(f"{path}.{key}")
            found.extend(_json_leaks(item, passwords, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_json_leaks(item, passwords, f"{path}[{i}]"))
    elif isinstance(value, str) and (value in passwords or value.startswith(("$argon2", "$2b$"))):
        found.append(path)
    return found


class SuiteSecrets(logging.Handler):
    """The secrets the suite created (phones, OTP codes, tokens, passwords) and its whole log.

    Installed once on the root logger. `new_leaks()` checks the lines logged since it was last
    called; `spans` remembers which test logged which lines, for the end-of-run sweep.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.spans: list[tuple[str, int, int]] = []  # (test id, first line, end line)
        self.reported: set[tuple[str, str]] = set()  # (test id, leak) already failed a test
        self.phones: set[str] = set()
        self.codes: set[str] = set()
        self.texts: set[str] = set()  # tokens and passwords: searched as plain text
        self.passwords: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def note_phone(self, raw: Any) -> None:
        from cloutsy.schemas import normalise_phone

        if not isinstance(raw, str):
            return
        try:
            e164 = normalise_phone(raw)
        except ValueError:
            return
        self.phones.update({e164, e164[3:] if e164.startswith("+91") else e164})

    def note_token(self, token: Any) -> None:
        if isinstance(token, str) and len(token) >= 16:
            self.texts.add(token)

    def note_request(self, req: Any) -> None:
        header = req.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            self.note_token(header[7:].strip())
        # Large bodies are left alone: reading them makes WebOb spool to an unclosed temp file.
        if not req.content_type.startswith("application/json") or (req.content_length or 0) > 8192:
            return
        try:
            body = json.loads(req.body)
        except (ValueError, RecursionError):  # the malformed bodies tests send on purpose
            return
        if not isinstance(body, dict):
            return
        for key in ("phone", "pocContactNumber"):
            self.note_phone(body.get(key))
        password = body.get("password")
        if isinstance(password, str) and len(password) >= 8:
            self.passwords.add(password)
            self.texts.add(password)
        if isinstance(body.get("otp"), str):
            self.codes.add(body["otp"])

    def note_response(self, res: Any) -> None:
        if res.content_type != "application/json" or not res.body:
            return
        body = res.json
        leaks = _json_leaks(body, self.passwords)
        assert not leaks, f"a password in a response: {leaks}"
        if isinstance(body, dict):
            self.note_token(body.get("token"))
            if isinstance(body.get("debugOtp"), str):
                self.codes.add(body["debugOtp"])
            for key in ("phone", "pocContactNumber"):
                self.note_phone(body.get(key))

    def leaks_in(self, text: str) -> list[str]:
        """Every noted secret that appears in `text`."""
        phones = {p.lstrip("+") for p in self.phones}
        found = [f"phone {p}" for p in {m.lstrip("+") for m in PHONE_RUN.findall(text)} & phones]
        found += [f"code {c}" for c in set(CODE_RUN.findall(text)) & self.codes]
        found += [f"secret {t[:6]}…" for t in self.texts if t in text]
        return sorted(found)

    def new_leaks(self, test: str) -> list[str]:
        """The secrets in the lines logged since the last call, which `test` is blamed for."""
        first = self.spans[-1][2] if self.spans else 0
        end = len(self.lines)
        self.spans.append((test, first, end))
        leaks = self.leaks_in("\n".join(self.lines[first:end]))
        self.reported.update((test, leak) for leak in leaks)
        return leaks

    def late_leaks(self) -> dict[str, list[str]]:
        """Per test, the leaks that only secrets noted after it revealed (not yet reported)."""
        logged: dict[str, list[str]] = {}
        for test, first, end in self.spans:
            logged.setdefault(test, []).extend(self.lines[first:end])
        found = {}
        for test, lines in logged.items():
            leaks = [
                leak
                for leak in self.leaks_in("\n".join(lines))
                if (test, leak) not in self.reported
            ]
            if leaks:
                found[test] = leaks
        return found


SINK = pytest.StashKey[SuiteSecrets]()
LATE = pytest.StashKey[dict[str, list[str]]]()


@pytest.fixture(scope="session")
def suite_secrets(request: pytest.FixtureRequest) -> Iterator[SuiteSecrets]:
    """From first use to the end of the run: capture every log record (redacted as in
    production) for the per-test leak check below.
    """
    from cloutsy.logs import redact_every_record

    redact_every_record()
    sink = SuiteSecrets()
    request.config.stash[SINK] = sink
    root, ours = logging.getLogger(), logging.getLogger("cloutsy")
    level = ours.level
    ours.setLevel(logging.DEBUG)
    root.addHandler(sink)
    try:
        yield sink
    finally:
        root.removeHandler(sink)
        ours.setLevel(level)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail the test (setup, call or teardown) during which a secret reached the log."""
    report = yield
    sink = item.config.stash.get(SINK, None)
    if sink is None:
        return report
    leaks = sink.new_leaks(item.nodeid)
    if leaks:
        message = f"secrets reached the log during {call.when}: {leaks[:10]}"
        if report.failed:
            report.sections.append(("secrets in the log", message))
        else:
            report.outcome = "failed"
            report.longrepr = message
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run for a leak that a secret noted later revealed, naming the test."""
    sink = session.config.stash.get(SINK, None)
    late = sink.late_leaks() if sink is not None else {}
    session.config.stash[LATE] = late
    if late:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    late = config.stash.get(LATE, {})
    if late:
        terminalreporter.section("secrets in the log", red=True)
        for test, leaks in late.items():
            terminalreporter.write_line(f"LEAKED {test}: {leaks[:10]}")


@functools.cache
def checked_test_app() -> type:
    """A TestApp class that shows each request and response to `SuiteSecrets`."""
    from webtest import TestApp

    class CheckedTestApp(TestApp):
        def __init__(self, app: Any, secrets: SuiteSecrets) -> None:
            super().__init__(app)
            self.secrets = secrets

        def do_request(self, req, status=None, expect_errors=None):  # noqa: ANN001, ANN201
            self.secrets.note_request(req)
            res = super().do_request(req, status=status, expect_errors=expect_errors)
            self.secrets.note_response(res)
            return res

    return CheckedTestApp
