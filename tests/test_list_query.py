"""The list query string: one model validates it, names its parameters and documents them.

The messages below are the contract's answers to bad list parameters (400 bad_request);
the OpenAPI parameters of both list routes are generated from the same model.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloutsy.api.openapi import query_parameters
from cloutsy.list_query import ListQuery, encode_cursor, parameter_names

BAD = {
    "limit=0": "limit must be a whole number from 1 to 100",
    "limit=101": "limit must be a whole number from 1 to 100",
    "limit=%C2%B2": "limit must be a whole number from 1 to 100",
    "limit=5&limit=6": "query parameter limit may appear only once",
    "verified=yes": "verified must be true or false",
    "verified=true&verified=true": "query parameter verified may appear only once",
    "niche=Fashion!!": "niche must be a niche slug or id",
    "niche=" + "1" * 30: "niche id out of range",
    "&".join(["niche=food"] * 11): "at most 10 niche filters",
    "q=" + "x" * 201: "q must be at most 200 characters",
    "q=%00": "query parameter q must not contain NUL characters",
    "unknown=1": "unknown query parameter: unknown",
    "cursor=not-a-cursor": "cursor is not valid",
    "cursor=a&cursor=b": "query parameter cursor may appear only once",
    "&".join(["niche=BAD!"] * 11): "at most 10 niche filters",  # counted before read
    # the first bad parameter, in the model's order, is the one named
    "limit=0&niche=Fashion!!": "niche must be a niche slug or id",
}


@pytest.mark.parametrize("query", BAD, ids=lambda q: q[:40])
def test_a_bad_parameter_gets_its_message(client: Any, query: str) -> None:
    error = client.get(f"/influencers?{query}", status=400).json["error"]
    assert error == {"code": "bad_request", "message": BAD[query]}


def test_a_good_query_string_becomes_the_filter() -> None:
    params = {
        "niche": [" Food ", "7"],
        "q": ["street"],
        "verified": ["false"],
        "limit": ["5"],
        "cursor": [encode_cursor(42)],
    }
    f = ListQuery.model_validate(params)
    assert (f.niche_slugs, f.niche_ids, f.q, f.verified, f.limit, f.after_id) == (
        ("food",),
        (7,),
        "street",
        False,
        5,
        42,
    )
    assert ListQuery.model_validate({}) == ListQuery.of()


def test_openapi_list_parameters_are_the_models_fields(doc: dict[str, Any]) -> None:
    generated = query_parameters(ListQuery)
    assert {p["name"] for p in generated} == parameter_names(ListQuery)
    by_name = {p["name"]: p for p in generated}
    assert by_name["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert by_name["niche"]["schema"]["maxItems"] == 10 and by_name["niche"]["explode"]
    assert by_name["q"]["schema"] == {"type": "string", "maxLength": 200}
    assert by_name["verified"]["schema"] == {"type": "boolean"}
    for path in ("/influencers", "/brands"):
        served = [p for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"]
        assert served == generated


@pytest.fixture
def doc(wsgi_app: Any) -> dict[str, Any]:
    from webtest import TestApp

    return TestApp(wsgi_app).get("/openapi.json").json
