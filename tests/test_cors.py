"""CORS (CONTRACT §5 "Browsers"): the configured origins only, preflight included.

The requests are the ones Chromium sends: a preflight for a JSON POST with an
Idempotency-Key, then the actual request carrying `Origin`.
"""

from __future__ import annotations

import pytest
from webtest import TestApp

from cloutsy.api import create_app
from cloutsy.config import ConfigError, load_settings

ALLOWED = "https://app.example"
OTHER = "https://evil.example"
EXPOSED = {"x-request-id", "etag", "location", "retry-after"}


@pytest.fixture(scope="module")
def cors_app(pool, app_settings):
    app = create_app(app_settings.with_overrides(cors_origins=frozenset({ALLOWED})))
    yield app


@pytest.fixture
def browser(db, cors_app):
    return TestApp(cors_app)


def preflight(browser, origin: str, method: str = "POST", path: str = "/influencers"):
    # What Chromium sends before a cross-origin fetch() with a JSON body and custom headers.
    return browser.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,idempotency-key",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "cross-site",
            "Sec-Fetch-Dest": "empty",
        },
        expect_errors=True,
    )


def listed(value: str) -> set[str]:
    return {v.strip().lower() for v in value.split(",")}


def test_a_preflight_from_an_allowed_origin_is_answered(browser):
    r = preflight(browser, ALLOWED)
    assert r.status_int == 204 and r.body == b""
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert {"post", "patch", "put", "delete", "get"} <= listed(
        r.headers["Access-Control-Allow-Methods"]
    )
    assert {"content-type", "idempotency-key", "authorization", "if-none-match"} <= listed(
        r.headers["Access-Control-Allow-Headers"]
    )
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert r.headers["X-Request-Id"]
    patch = preflight(browser, ALLOWED, "PATCH", "/influencers/1")
    assert patch.status_int == 204


def test_the_actual_request_exposes_the_contract_headers(browser):
    r = browser.get("/niches", headers={"Origin": ALLOWED})
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert listed(r.headers["Access-Control-Expose-Headers"]) == EXPOSED
    assert "Origin" in r.headers["Vary"]
    error = browser.get("/influencers/999999", headers={"Origin": ALLOWED}, status=404)
    assert error.headers["Access-Control-Allow-Origin"] == ALLOWED
    body = {"name": "Web", "username": "webby", "email": "web@example.com", "phone": "9812300055"}
    created = browser.post_json(
        "/influencers", body, headers={"Origin": ALLOWED, "Idempotency-Key": "k1"}, status=201
    )
    assert created.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert created.headers["Location"]


def test_any_other_origin_gets_no_cors_header(browser):
    r = preflight(browser, OTHER)
    assert r.status_int == 405
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = browser.get("/niches", headers={"Origin": OTHER})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    # a look-alike is another origin
    for origin in (ALLOWED + ".evil", ALLOWED + ":8443", "http://app.example", "null"):
        r = browser.get("/niches", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in r.headers, origin


def test_without_configured_origins_nobody_gets_cors(client):
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/niches", headers={"Origin": ALLOWED}).headers
    )
    assert preflight(client, ALLOWED).status_int == 405


def test_the_setting_takes_exact_origins_only():
    settings = load_settings(
        {"CLOUTSY_CORS_ORIGINS": " https://App.example , http://localhost:5173,"}
    )
    assert settings.cors_origins == {"https://app.example", "http://localhost:5173"}
    assert load_settings({}).cors_origins == frozenset()
    for bad in ("*", "https://app.example/", "app.example", "https://app.example/path"):
        with pytest.raises(ConfigError, match="CLOUTSY_CORS_ORIGINS"):
            load_settings({"CLOUTSY_CORS_ORIGINS": bad})
