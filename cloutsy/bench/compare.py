"""The same-JSON check: the service must answer what the baseline answers.

Both servers get the same sample of requests (ids, inactive and missing ids, niche
pages); timestamps are compared as instants, list pages by their items (cursors are
opaque). Also the revalidation check: an ETag that turns a GET into an empty 304.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from cloutsy.bench import BenchError
from cloutsy.progress import Say

Answers = dict[str, tuple[int, Any]]


def normalise(value: Any) -> Any:
    """Parse timestamps (keys ending in `At`) so equal instants compare equal."""
    if isinstance(value, dict):
        return {
            k: _instant(v) if k.endswith("At") and isinstance(v, str) else normalise(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def _instant(text: str) -> dt.datetime | str:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return text


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    """Where two normalised JSON values first differ, as a short path and both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                return f"{where}.{key} missing"
            if key not in expected:
                return f"{where}.{key} unexpected"
            found = first_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where} has {len(actual)} items, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(e, a, f"{where}[{i}]")
            if found:
                return found
        return None
    if expected != actual or type(expected) is not type(actual):
        return f"{where or 'body'}: {actual!r}, expected {expected!r}"
    return None


def fetch(base: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    """GET base+path; (status, parsed JSON body or None)."""
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(body or b"null")
        return exc.code, None


def revalidation_tag(base: str, path: str, timeout: float = 10.0) -> str:
    """The ETag of base+path, checked to turn a revalidation into a 304 with no body."""
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as resp:
            tag = resp.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        raise BenchError(f"GET {path} answered {exc.code}: no ETag to revalidate") from None
    if not tag:
        raise BenchError(f"GET {path} carries no ETag")
    request = urllib.request.Request(base + path, headers={"If-None-Match": tag})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if status != 304 or body:
        raise BenchError(f"GET {path} with If-None-Match gave {status}, not an empty 304")
    return tag


def answers(base: str, paths: Sequence[str]) -> Answers:
    """Status and comparable body for each path (list endpoints: items only)."""
    out = {}
    for path in paths:
        status, body = fetch(base, path)
        if status == 200 and isinstance(body, dict) and "items" in body:
            body = body["items"]
        out[path] = (status, normalise(body) if status == 200 else None)
    return out


def compare_answers(expected: Answers, actual: Answers) -> list[str]:
    """One line per path where the service's answer is not the baseline's."""
    problems = []
    for path, (status, body) in expected.items():
        got_status, got_body = actual.get(path, (0, None))
        if got_status != status:
            problems.append(f"GET {path}: status {got_status}, expected {status}")
            continue
        diff = first_difference(body, got_body)
        if diff:
            problems.append(f"GET {path}: {diff}")
    return problems


def check_same_json(reference: Answers, got: Answers, progress: Say) -> None:
    """Raise BenchError naming the first difference between the two servers' answers."""
    problems = compare_answers(reference, got)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(f"service and baseline disagree: {problems[0]}{more}")
    progress(f"  same JSON from service and baseline on {len(reference)} requests")
