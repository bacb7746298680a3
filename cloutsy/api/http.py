"""HTTP plumbing shared by every route: the request plugin, errors as JSON, bodies, queries.

The plugin gives each request a pooled connection and always gives it back,
translates the error tree into the contract's JSON, and records metrics. Routes are
registered through `endpoints.Api`, which records each one's contract for /openapi.json.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import bottle
import orjson
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from pydantic import BaseModel

from cloutsy import replicas
from cloutsy.api import caching, metrics
from cloutsy.config import IpNetwork
from cloutsy.db import database
from cloutsy.errors import (
    BadRequest,
    CloutsyError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
)
from cloutsy.list_query import parameter_names, parse_query
from cloutsy.schemas import parse, positive_id

log = logging.getLogger("cloutsy.api")

JSON = "application/json; charset=utf-8"
MAX_BODY = 64 * 1024
# fullmatch, not `$`: `$` also matches before a trailing newline.
# C0 and C1 control characters (NUL included): no path segment may hold one.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
M = TypeVar("M", bound=BaseModel)


# --- responses ---------------------------------------------------------------------------


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def error_payload(error: CloutsyError) -> dict[str, Any]:
    body = error.to_dict()
    rid = bottle.request.environ.get("cloutsy.request_id")
    if error.status >= 500 and rid:
        body["error"]["requestId"] = rid
    return body


def error_response(error: CloutsyError) -> bytes:
    """Set status and headers for `error` on the current response; return its JSON body."""
    resp = bottle.response
    resp.status = error.status
    resp.content_type = JSON
    if isinstance(error, (RateLimited, Unavailable)):
        resp.set_header("Retry-After", str(error.retry_after))
    if isinstance(error, PayloadTooLarge):
        resp.set_header("Connection", "close")
    return dumps(error_payload(error))


def internal_error(exc: BaseException) -> bytes:
    """Log an unexpected failure with the request id; answer 500 without any detail."""
    rid = bottle.request.environ.get("cloutsy.request_id", "-")
    log.error("unhandled error in request %s: %s", rid, type(exc).__name__, exc_info=exc)
    error = CloutsyError("an internal error occurred; quote the request id if you report it")
    return error_response(error)


def json_body(payload: Any, status: int = 200) -> bytes:
    bottle.response.status = status
    return dumps(payload)


# --- the plugin --------------------------------------------------------------------------


# An outcome the hot reads (hot_reads.py) met and left for the plugin to answer.
PENDING = "cloutsy.pending"


def request_id(environ: dict[str, Any]) -> str:
    """This request's id: the caller's `X-Request-Id` when well-formed, else a new one."""
    known: str | None = environ.get("cloutsy.request_id")
    if known is not None:  # the hot reads gave it one before handing the request over
        return known
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    # 32 random hex digits, like uuid4().hex without building a UUID (~3 us a request).
    rid = incoming if REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
    environ["cloutsy.request_id"] = rid
    return rid


# Read-your-writes (CONTRACT §10): after a write, the caller's reads stay on the primary
# for CLOUTSY_READ_YOUR_WRITES_S. The deadline travels in a cookie, so it holds whichever
# worker or host serves the next request; it is no secret (at worst a client sends its own
# reads to the primary).
READ_YOUR_WRITES_COOKIE = "cloutsy_ryw"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def may_read_replica() -> bool:
    """False while this caller's read-your-writes window (its cookie) is open."""
    cookie = bottle.request.get_cookie(READ_YOUR_WRITES_COOKIE)
    if cookie is None:
        return True
    try:
        return float(cookie) <= time.time()
    except ValueError:
        return True


def note_write(window_s: float) -> None:
    """Open the caller's read-your-writes window on this response."""
    until = time.time() + window_s
    bottle.response.set_cookie(
        READ_YOUR_WRITES_COOKIE,
        f"{until:.3f}",
        max_age=max(1, int(window_s + 1)),
        path="/",
        httponly=True,
        samesite="lax",
    )


class RequestPlugin:
    """Per request: an id, a pooled connection taken and always given back, JSON errors, metrics;
    public reads may go to a replica (`replica=True` routes), writes open read-your-writes.
    """

    name = "cloutsy"
    api = 2

    def __init__(self, read_your_writes_s: float = 0.0) -> None:
        self.read_your_writes_s = read_your_writes_s

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        needs_db = route.config.get("db", True)
        public_read = route.config.get("replica", False)
        writes = route.method in WRITE_METHODS
        template = route.rule
        # GET answers get ETag / Cache-Control / Vary here, once for every route (§5).
        finish: Callable[[Any], Any] | None = None
        if route.method == "GET":
            finish = caching.finisher(
                route.config.get("cache"), route.config.get("vary_auth", False)
            )

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            resp = bottle.response
            resp.content_type = JSON
            started = time.perf_counter()
            code = None
            opened = False
            try:
                pending = environ.pop(PENDING, None)
                if pending is not None:  # what the hot reads met, answered as if raised here
                    raise pending
                if any(CONTROL.search(v) for v in kwargs.values() if isinstance(v, str)):
                    raise NotFound("no such resource")
                if needs_db and database.is_closed():
                    database.connect()
                    opened = True
                if replicas.current is None:
                    out = callback(*args, **kwargs)
                else:
                    with replicas.public_reads(public_read and may_read_replica()):
                        out = callback(*args, **kwargs)
                    if writes and resp.status_code < 400 and self.read_your_writes_s > 0:
                        note_write(self.read_your_writes_s)
                # A handler returns str only for JSON PostgreSQL built, compactly (queries.py).
                if isinstance(out, str) and out:
                    out = out.encode()
                return finish(out) if finish is not None else out
            except CloutsyError as exc:
                code = exc.code
                if isinstance(exc, RateLimited) and exc.limit:
                    metrics.rate_limited(exc.limit)
                if exc.status >= 500:  # e.g. a value that does not decrypt: say which column
                    log.error("request %s failed: %s", environ.get("cloutsy.request_id"), exc)
                return error_response(exc)
            except MaxConnectionsExceeded:
                code = "unavailable"
                log.warning("pool exhausted: request %s", environ.get("cloutsy.request_id"))
                return error_response(Unavailable("the service is busy; try again shortly", 2))
            except (OperationalError, InterfaceError) as exc:
                code = "unavailable"
                log.warning("database unavailable: %s", str(exc).strip().splitlines()[0:1])
                # A lost connection is thrown away; one that only timed out goes back healthy.
                if opened and database.connection_is_dead():
                    database.discard_connection()
                    opened = False
                return error_response(Unavailable())
            except bottle.HTTPResponse:
                raise
            except Exception as exc:
                code = "internal_error"
                return internal_error(exc)
            finally:
                if opened:
                    database.close()
                metrics.observe_request(
                    template,
                    environ["REQUEST_METHOD"],
                    resp.status_code,
                    time.perf_counter() - started,
                    code,
                )

        return wrapper


def install(app: bottle.Bottle) -> None:
    """JSON for every error bottle raises itself, and an X-Request-Id on every response."""

    def on_error(res: bottle.HTTPError) -> bytes:
        status = res.status_code
        if status == 404:
            error: CloutsyError = NotFound("no such route")
        elif status == 405:
            error = MethodNotAllowed()
            allow = res.headers.get("Allow")
            if allow:
                bottle.response.set_header("Allow", allow)
        elif status == 413:
            error = PayloadTooLarge()
        elif 400 <= status < 500:
            error = BadRequest(str(res.body) if isinstance(res.body, str) and res.body else "")
        else:
            return internal_error(res.exception or RuntimeError(str(res.body)))
        metrics.observe_request("unmatched", bottle.request.method, status, 0.0, error.code)
        return error_response(error)

    app.default_error_handler = on_error  # type: ignore[method-assign]

    @app.hook("before_request")
    def assign_request_id() -> None:
        request_id(bottle.request.environ)

    @app.hook("after_request")
    def tag_response() -> None:
        resp = bottle.response
        resp.set_header("X-Request-Id", bottle.request.environ["cloutsy.request_id"])
        if "Cache-Control" not in resp.headers:  # safe default: nothing stored anywhere
            resp.set_header("Cache-Control", caching.PRIVATE)

    settings = app.config.get("cloutsy.settings")
    app.install(RequestPlugin(settings.read_your_writes_s if settings else 0.0))


# --- request bodies and queries ------------------------------------------------------------


def read_body() -> bytes:
    """The raw JSON body: 413 before reading when over 64 KiB, 400 for another content type.

    Read once per request (the idempotency layer fingerprints it before the handler parses it).
    """
    environ = bottle.request.environ
    cached: bytes | None = environ.get("cloutsy.body")
    if cached is not None:
        return cached
    length_header = environ.get("CONTENT_LENGTH") or ""
    if length_header:
        try:
            length = int(length_header)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length > MAX_BODY:
            raise PayloadTooLarge(f"the body must be at most {MAX_BODY // 1024} KiB")
    ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest("Content-Type must be application/json")
    stream = environ["wsgi.input"]
    data = stream.read(int(length_header)) if length_header else stream.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise PayloadTooLarge(f"the body must be at most {MAX_BODY // 1024} KiB")
    environ["cloutsy.body"] = data
    return data


def body_as(model: type[M]) -> M:
    """The request body validated into `model` (400 bad_request / validation_error)."""
    return parse(model, read_body())


def query_as(model: type[M], raw: str | None = None) -> M:
    """The query string (this request's, or `raw`) validated into `model` (400 bad_request
    naming the first bad value)."""
    return parse_query(model, query_params(parameter_names(model), raw))


def query_params(allowed: set[str], raw: str | None = None) -> dict[str, list[str]]:
    """The query string (this request's, or `raw`) as name -> values; 400 for a name not in
    `allowed` or a NUL byte."""
    if raw is None:
        raw = bottle.request.environ.get("QUERY_STRING", "")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=50, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the query string is malformed") from None
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            raise BadRequest(f"unknown query parameter: {name[:40]}")
        if "\x00" in value:
            raise BadRequest(f"query parameter {name} must not contain NUL characters")
        out.setdefault(name, []).append(value)
    return out


def client_address(trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the socket's peer, or what X-Forwarded-For says through
    trusted proxies only (CLOUTSY_TRUSTED_PROXIES).

    Walks X-Forwarded-For from the right (each proxy appends the peer it saw) while the
    hop is a trusted proxy; the first untrusted hop is the client. Anything a client
    wrote further left is never believed.
    """
    environ = bottle.request.environ
    address = environ.get("REMOTE_ADDR") or "unknown"
    if not trusted or not _trusted(address, trusted):
        return address
    hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # garbage in the header: keep the last address a trusted hop vouched for
        if not _trusted(address, trusted):
            break
    return address


def _trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def path_id(raw: str) -> int:
    """A numeric id from the path; anything else (or out of range) is simply not found."""
    value = positive_id(raw)
    if value is None:
        raise NotFound("no such resource")
    return value
