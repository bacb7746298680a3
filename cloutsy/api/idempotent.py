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

from cloutsy.api.http import client_address, read_body
from cloutsy.config import Settings
from cloutsy.db import database
from cloutsy.errors import BadRequest
from cloutsy.services import idempotency

HEADER = "Idempotency-Key"
# 1-255 printable ASCII characters, not starting or ending with a space (RFC 9110 trims them).
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
KEY = re.compile(KEY_PATTERN)
REPLAYED = "Idempotent-Replayed"


def caller_scope(environ: dict[str, Any], address: str) -> str:
    """Who is calling, for the key's scope: their credential, else their address.

    Only its keyed hash is stored (with the route and the key), never the value itself.
    """
    auth = environ.get("HTTP_AUTHORIZATION")
    if auth:
        return "auth:" + auth
    return "addr:" + address


@dataclass(frozen=True)
class Idempotent:
    """Makes a POST route honour Idempotency-Key.

    keep: top-level fields of the first 2xx answer remembered with the key;
    render: builds the answer again from them (the status is set before it runs);
    prepare: work done before the key is claimed, outside its transaction and holding no
    pooled connection (a brand's Argon2 hash); what it returns is passed to the handler
    as keyword arguments.
    """

    settings: Settings
    keep: tuple[str, ...]
    render: Callable[[dict[str, Any]], Any]
    prepare: Callable[[], dict[str, Any]] | None = None

    def wrap(self, fn: Callable[..., Any], route: str) -> Callable[..., Any]:
        secret = self.settings.secret_key

        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            key = environ.get("HTTP_IDEMPOTENCY_KEY")
            if key is None:
                if self.prepare is not None:
                    kwargs.update(self.prepare())
                return fn(*args, **kwargs)
            if not KEY.match(key):
                raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters")
            if self.prepare is not None:
                kwargs.update(self.prepare())
            body = read_body()
            caller = caller_scope(environ, client_address(self.settings.trusted_proxies))
            # The key and the write share one transaction on one connection (the route may
            # hold none: db=False).
            with database.connected(), idempotency.claim(secret, caller, route, key, body) as claim:
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
