"""CORS for the origins in CLOUTSY_CORS_ORIGINS only (CONTRACT §5 "Browsers").

An allowed origin gets `Access-Control-Allow-Origin` (its own value, never `*`) and the
exposed headers on every answer, and its preflight (`OPTIONS` with
`Access-Control-Request-Method`) is answered 204 before routing. Any other origin gets
no CORS header at all, so its browser refuses the answer; its preflight falls through to
the router (405). Credentials are bearer tokens sent by the page, not cookies, so
`Access-Control-Allow-Credentials` is never sent. With no origins configured nothing is
installed.
"""

from __future__ import annotations

import bottle

EXPOSED = "X-Request-Id, ETag, Location, Retry-After"
METHODS = "GET, POST, PUT, PATCH, DELETE"
HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, X-Request-Id"
MAX_AGE = "600"  # seconds a browser may keep a preflight answer


def _add_vary(resp: bottle.BaseResponse, name: str) -> None:
    current = resp.headers.get("Vary")
    resp.set_header("Vary", f"{current}, {name}" if current else name)


def install(app: bottle.Bottle, origins: frozenset[str]) -> None:
    """Answer preflights and tag answers for `origins`; nothing when there are none."""
    if not origins:
        return

    @app.hook("before_request")
    def preflight() -> None:
        environ = bottle.request.environ
        if (
            environ["REQUEST_METHOD"] == "OPTIONS"
            and environ.get("HTTP_ORIGIN") in origins
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            raise bottle.HTTPResponse(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": HEADERS,
                    "Access-Control-Max-Age": MAX_AGE,
                },
            )

    @app.hook("after_request")
    def allow() -> None:
        resp = bottle.response
        # Every answer may differ by Origin now: shared caches must keep them apart.
        _add_vary(resp, "Origin")
        origin = bottle.request.environ.get("HTTP_ORIGIN")
        if origin in origins:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", EXPOSED)
