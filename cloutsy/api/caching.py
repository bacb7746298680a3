"""HTTP caching of GET answers (CONTRACT §5 "HTTP caching"), in one place for every route.

Every 200 GET gets a weak ETag hashed from the body bytes already built (BLAKE2b, a few
microseconds for a profile), `Cache-Control` from its route's policy and, where the
answer depends on the caller, `Vary: Authorization`. A matching `If-None-Match` turns
it into a 304 with no body. An answer carrying a private view is marked by its handler
(`private_answer()`) and is never stored (`private, no-store`), whatever its route says.
Answers that are not 200 GETs get `private, no-store` (http.py's after-request hook).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import bottle

PUBLIC = "public, max-age=60"
REVALIDATE = "no-cache"
PRIVATE = "private, no-store"
POLICIES = {"public": PUBLIC, "revalidate": REVALIDATE, "private": PRIVATE}
PRIVATE_MARK = "cloutsy.private_answer"


def private_answer() -> None:
    """Mark this request's answer as carrying a private view (never stored by a cache)."""
    bottle.request.environ[PRIVATE_MARK] = True


def etag_of(body: bytes) -> str:
    """A weak validator that changes whenever the body does."""
    return 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): any listed tag, or `*`, equal to ours."""
    ours = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == ours:
            return True
    return False


def validators(
    body: bytes, cache_control: str, vary_auth: bool, if_none_match: str | None
) -> tuple[bool, list[tuple[str, str]]]:
    """(not modified?, the caching headers) of a 200 GET answer with `body`.

    The one statement of the rules: both the bottle path (`finisher`) and the hot reads
    (`hot_reads.py`) answer with these headers.
    """
    etag = etag_of(body)
    headers = [("ETag", etag), ("Cache-Control", cache_control)]
    if vary_auth:
        headers.append(("Vary", "Authorization"))
    return bool(if_none_match) and matches(if_none_match or "", etag), headers


def policy_of(policy: str | None) -> str:
    """The Cache-Control value of a route's cache policy (private when it names none)."""
    return POLICIES[policy] if policy else PRIVATE


def finisher(policy: str | None, vary_auth: bool) -> Callable[[Any], Any]:
    """The step that completes a GET handler's answer: validators, caching, 304."""
    cache_control = policy_of(policy)

    def finish(out: Any) -> Any:
        resp = bottle.response
        if resp.status_code != 200:
            return out
        if isinstance(out, str):
            out = out.encode()
        elif not isinstance(out, bytes):
            return out
        environ = bottle.request.environ
        private = PRIVATE_MARK in environ
        not_modified, headers = validators(
            out, PRIVATE if private else cache_control, vary_auth, environ.get("HTTP_IF_NONE_MATCH")
        )
        for name, value in headers:
            resp.set_header(name, value)
        if not_modified:
            resp.status = 304
            del resp.content_type
            return b""
        return out

    return finish
