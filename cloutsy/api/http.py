"""HTTP plumbing shared by every route: the request plugin, errors as JSON, bodies, queries.

`Api` registers routes on a Bottle app and records each one's contract (body,
responses, auth) for /openapi.json, so the document cannot drift from the routes.
The plugin gives each request a pooled connection and always gives it back,
translates the error tree into the contract's JSON, and records metrics.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import bottle
import orjson
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded
from pydantic import BaseModel

from cloutsy.api import metrics
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
from cloutsy.schemas import parse

log = logging.getLogger("cloutsy.api")

JSON = "application/json; charset=utf-8"
MAX_BODY = 64 * 1024
MAX_INT = 2_147_483_647
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
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


def _request_id(environ: dict[str, Any]) -> str:
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    rid = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    environ["cloutsy.request_id"] = rid
    return rid


class RequestPlugin:
    """Per request: an id, a pooled connection taken and always given back, JSON errors, metrics."""

    name = "cloutsy"
    api = 2

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        needs_db = route.config.get("db", True)
        template = route.rule

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            resp = bottle.response
            resp.content_type = JSON
            started = time.perf_counter()
            code = None
            opened = False
            try:
                if needs_db and database.is_closed():
                    database.connect()
                    opened = True
                return callback(*args, **kwargs)
            except CloutsyError as exc:
                code = exc.code
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
        _request_id(bottle.request.environ)

    @app.hook("after_request")
    def tag_response() -> None:
        bottle.response.set_header("X-Request-Id", bottle.request.environ["cloutsy.request_id"])

    app.install(RequestPlugin())


# --- request bodies and queries ------------------------------------------------------------


def read_body() -> bytes:
    """The raw JSON body: 413 before reading when over 64 KiB, 400 for another content type."""
    environ = bottle.request.environ
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
    return data


def body_as(model: type[M]) -> M:
    """The request body validated into `model` (400 bad_request / validation_error)."""
    return parse(model, read_body())


def query_params(allowed: set[str]) -> dict[str, list[str]]:
    """The query string as name -> values; 400 for a name not in `allowed` or a NUL byte."""
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


def single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"query parameter {name} may appear only once")
    return values[0]


def path_id(raw: str) -> int:
    """A numeric id from the path; anything else (or out of range) is simply not found."""
    if not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_INT:
        raise NotFound("no such resource")
    return int(raw)


# --- route registry ----------------------------------------------------------------------


@dataclass
class Endpoint:
    """One route's contract, as /openapi.json describes it."""

    method: str
    path: str
    summary: str
    tag: str
    auth: str | None = None
    body: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()
    path_params: tuple[dict[str, Any], ...] = ()
    # OpenAPI links from the first 2xx response: name -> (operationId, parameters)
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


class Api:
    """A Bottle app plus the contract of each route registered through it."""

    def __init__(self, app: bottle.Bottle) -> None:
        self.app = app
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: str | None = None,
        body: type[BaseModel] | None = None,
        responses: dict[int, type[BaseModel] | None] | None = None,
        query: tuple[dict[str, Any], ...] = (),
        links: dict[str, tuple[str, dict[str, str]]] | None = None,
        db: bool = True,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register `fn` for METHOD path (OpenAPI `{name}` placeholders)."""
        names = re.findall(r"{(\w+)}", path)
        rule = re.sub(r"{(\w+)}", r"<\1>", path)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.app.route(rule, method, fn, db=db)
            params = tuple(
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            )
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    summary,
                    tag,
                    auth,
                    body,
                    responses or {},
                    query,
                    params,
                    links or {},
                )
            )
            return fn

        return decorate
