"""The OpenAPI 3.1 document, generated from the registered routes and the pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cloutsy.api.http import Endpoint

DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request or invalid fields",
    401: "Missing or invalid bearer token",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "A unique value is already taken",
    413: "Body over 64 KiB",
    429: "Rate limited (see Retry-After)",
    500: "Internal error (with a request id)",
    503: "Database unavailable or the service busy (see Retry-After)",
}


def build(endpoints: list[Endpoint], title: str = "Cloutsy data service") -> dict[str, Any]:
    """An OpenAPI 3.1 document for `endpoints`."""
    models: set[type[BaseModel]] = set()
    for ep in endpoints:
        if ep.body:
            models.add(ep.body)
        models.update(m for m in ep.responses.values() if m is not None)
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
        params = [*ep.path_params, *ep.query]
        if params:
            op["parameters"] = list(params)
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
        for status, model in sorted(ep.responses.items()):
            response: dict[str, Any] = {"description": DESCRIPTIONS.get(status, str(status))}
            if model is not None:
                response["content"] = {"application/json": {"schema": ref_of[model]}}
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
