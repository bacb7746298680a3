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


def finisher(policy: str | None, vary_auth: bool) -> Callable[[Any], Any]:
    """The step that completes a GET handler's answer: validators, caching, 304."""
    cache_control = POLICIES[policy] if policy else PRIVATE

    def finish(out: Any) -> Any:
        resp = bottle.response
        if resp.status_code != 200:
            return out
        if isinstance(out, str):
            out = out.encode()
        elif not isinstance(out, bytes):
            return out
        environ = bottle.request.environ
        etag = etag_of(out)
        resp.set_header("ETag", etag)
        resp.set_header("Cache-Control", PRIVATE if PRIVATE_MARK in environ else cache_control)
        if vary_auth:
            resp.set_header("Vary", "Authorization")
        condition = environ.get("HTTP_IF_NONE_MATCH")
        if condition and matches(condition, etag):
            resp.status = 304
            del resp.content_type
            return b""
        return out

    return finish
