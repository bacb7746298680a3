"""The `Idempotency-Key` header on a POST route (CONTRACT §5 "Idempotent retries").

Generic over the routes: the layer fingerprints the raw body (whatever its fields),
scopes the key to the route and the caller, and lets `services.idempotency` keep it in
the write's own transaction. Each route says only which top-level fields of its first
answer to remember (`keep`: ids and times, never PII or secrets) and how to render the
answer afresh from them (`render`), so a replay shows the resource as it is now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import bottle
import orjson

from cloutsy.api.http import read_body
from cloutsy.config import Settings
from cloutsy.errors import BadRequest
from cloutsy.services import idempotency

HEADER = "Idempotency-Key"
# 1-255 printable ASCII characters, not starting or ending with a space (RFC 9110 trims them).
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
KEY = re.compile(KEY_PATTERN)
REPLAYED = "Idempotent-Replayed"


def caller_scope(environ: dict[str, Any]) -> str:
    """Who is calling, for the key's scope: their credential, else their address.

    Only its keyed hash is stored (with the route and the key), never the value itself.
    """
    auth = environ.get("HTTP_AUTHORIZATION")
    if auth:
        return "auth:" + auth
    return "addr:" + str(environ.get("REMOTE_ADDR", ""))


@dataclass(frozen=True)
class Idempotent:
    """Makes a POST route honour Idempotency-Key.

    keep: top-level fields of the first 2xx answer remembered with the key;
    render: builds the answer again from them (the status is set before it runs).
    """

    settings: Settings
    keep: tuple[str, ...]
    render: Callable[[dict[str, Any]], Any]

    def wrap(self, fn: Callable[..., Any], route: str) -> Callable[..., Any]:
        secret = self.settings.secret_key

        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            key = environ.get("HTTP_IDEMPOTENCY_KEY")
            if key is None:
                return fn(*args, **kwargs)
            if not KEY.match(key):
                raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters")
            body = read_body()
            with idempotency.claim(secret, caller_scope(environ), route, key, body) as claim:
                resp = bottle.response
                if claim.stored is not None:
                    resp.status = claim.stored_status
                    out = self.render(claim.stored)
                    resp.set_header(REPLAYED, "true")
                    return out
                out = fn(*args, **kwargs)
                if 200 <= resp.status_code < 300:
                    data = orjson.loads(out) if out else {}
                    claim.record(resp.status_code, {k: data[k] for k in self.keep if k in data})
                return out

        return handler
