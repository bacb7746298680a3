"""The OpenAPI 3.1 document, generated from the registered routes and the pydantic schemas.

Besides each route's own answers it declares what every answer can be and carry: 500 and
503 everywhere, 304 on every GET, 409 and 422 where an Idempotency-Key is accepted, and
the headers of CONTRACT §5 (X-Request-Id, Cache-Control, ETag, Vary, Location,
Retry-After, Idempotent-Replayed), so a generated client and schemathesis see them all.
`tests/test_openapi.py` runs openapi-spec-validator and a code generator over it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cloutsy.api.endpoints import Endpoint
from cloutsy.api.idempotent import HEADER as IDEMPOTENCY_HEADER
from cloutsy.api.idempotent import KEY_PATTERN, REPLAYED
from cloutsy.schemas import ErrorOut

DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    304: "Not Modified: the If-None-Match tag still matches (no body)",
    400: "Bad request or invalid fields",
    401: "Missing or invalid bearer token",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "A unique value is already taken, or a request with this Idempotency-Key is running",
    413: "Body over 64 KiB",
    422: "The Idempotency-Key was used with a different body",
    429: "Rate limited (see Retry-After)",
    500: "Internal error (with a request id)",
    503: "Database unavailable or the service busy (see Retry-After)",
}


def _header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


REQUEST_ID = _header("the request's id (also in the log)", {"type": "string"})
CACHE_CONTROL = _header(
    "public, max-age=60 (niches); no-cache (public reads); private, no-store (anything else)",
    {"type": "string", "enum": ["public, max-age=60", "no-cache", "private, no-store"]},
)
ETAG = _header("weak validator of the body; send it back in If-None-Match", {"type": "string"})
VARY = _header("the answer depends on the Authorization header", {"type": "string"})
LOCATION = _header("the new resource", {"type": "string"})
RETRY_AFTER = _header("seconds to wait before retrying", {"type": "integer", "minimum": 1})
REPLAYED_HEADER = _header(
    "present when this answer replays an earlier request with the same Idempotency-Key",
    {"type": "string", "enum": ["true"]},
    required=False,
)

IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "the ETag of a copy the client holds: 304 with no body if it is current",
    "schema": {"type": "string"},
}
IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "a unique value per operation (e.g. a UUID): a retry with the same key and body "
        "within 24 h replays the first answer (Idempotent-Replayed: true) and changes nothing"
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
}


def query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    """The `in: query` parameters of a query-string model, one per field, from its JSON schema.

    An optional field is documented by its value's schema (absent, not null, is how a
    query string leaves it out); a list is a repeatable (`form`, exploded) parameter.
    """
    if model is None:
        return []
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        description = prop.pop("description", None)
        values = [s for s in prop.pop("anyOf", ()) if s != {"type": "null"}]
        prop = {**values[0], **prop} if values else prop
        if prop.get("default") in (None, []):
            prop.pop("default", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        if description:
            param["description"] = description
        param["schema"] = prop
        params.append(param)
    return params


def _models(body: Any) -> tuple[type[BaseModel], ...]:
    if body is None:
        return ()
    return body if isinstance(body, tuple) else (body,)


def _responses(ep: Endpoint) -> dict[int, Any]:
    """The route's own answers plus those every route (or every GET) can give."""
    responses = dict(ep.responses)
    if ep.method == "GET" and 200 in responses:
        responses[304] = None
    if ep.idempotent:
        responses.setdefault(409, ErrorOut)
        responses.setdefault(422, ErrorOut)
        responses.setdefault(400, ErrorOut)
    responses.setdefault(500, ErrorOut)
    responses.setdefault(503, ErrorOut)
    return responses


def _headers(ep: Endpoint, status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": REQUEST_ID, "Cache-Control": CACHE_CONTROL}
    if ep.method == "GET" and status in (200, 304):
        headers["ETag"] = ETAG
        if ep.vary_auth:
            headers["Vary"] = VARY
    if status == 201:
        headers["Location"] = LOCATION
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER
    if ep.idempotent and 200 <= status < 300:
        headers[REPLAYED] = REPLAYED_HEADER
    return headers


def build(endpoints: list[Endpoint], title: str = "Cloutsy data service") -> dict[str, Any]:
    """An OpenAPI 3.1 document for `endpoints`."""
    models: set[type[BaseModel]] = {ErrorOut}
    for ep in endpoints:
        if ep.body:
            models.add(ep.body)
        for body in ep.responses.values():
            models.update(_models(body))
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, schema = models_json_schema(
        [(m, "validation" if _is_request(m, endpoints) else "serialization") for m in ordered],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    ref_of = {model: refs[(model, mode)] for (model, mode) in refs}

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": _operation_id(ep),
            "tags": [ep.tag],
            "responses": {},
        }
        params = [*ep.path_params, *query_parameters(ep.query)]
        if ep.method == "GET":
            params.append(IF_NONE_MATCH)
        if ep.idempotent:
            params.append(IDEMPOTENCY_KEY)
        if params:
            op["parameters"] = params
        if ep.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[ep.body]}},
            }
        if ep.auth in ("bearer", "admin"):
            op["security"] = [{"bearer": []}]
        elif ep.auth == "optional":
            op["security"] = [{}, {"bearer": []}]
        first_ok = min((s for s in ep.responses if s < 300), default=None)
        for status, body in sorted(_responses(ep).items()):
            response: dict[str, Any] = {
                "description": DESCRIPTIONS.get(status, str(status)),
                "headers": _headers(ep, status),
            }
            bodies = _models(body)
            if bodies:
                refs_ = [ref_of[m] for m in bodies]
                one = refs_[0] if len(refs_) == 1 else {"oneOf": refs_}
                response["content"] = {"application/json": {"schema": one}}
            if status == first_ok and ep.links:
                response["links"] = {
                    name: {"operationId": op_id, "parameters": params}
                    for name, (op_id, params) in ep.links.items()
                }
            op["responses"][str(status)] = response
        paths.setdefault(ep.path, {})[ep.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _is_request(model: type[BaseModel], endpoints: list[Endpoint]) -> bool:
    return any(ep.body is model for ep in endpoints)


def _operation_id(ep: Endpoint) -> str:
    words = [w.strip("{}") for w in ep.path.strip("/").split("/") if w]
    return ep.method.lower() + "".join(w.title().replace("_", "") for w in words)
