"""The hot reads (cloutsy/api/hot_reads.py) answer exactly as the bottle path does.

Each request is sent twice to the same app: through `App.__call__` (hot reads first) and
through `app.wsgi` (bottle only). Status, headers and body must be equal byte for byte;
the request id is pinned by the caller so that it is equal too, and header names are
compared case-insensitively.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from playhouse.pool import MaxConnectionsExceeded

from cloutsy import queries as read_side
from tests.helpers import influencer_body


def _environ(path: str, query: str = "", **headers: str) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "HTTP_X_REQUEST_ID": "pinned-request-id",
    }
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return environ


def _call(
    app: Any, path: str, query: str = "", **headers: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app(_environ(path, query, **headers), start_response))
    # Names compared as HTTP does, case-insensitively (bottle writes `Etag`, RFC 9110 `ETag`).
    return seen["status"], sorted((k.title(), v) for k, v in seen["headers"]), body


@pytest.fixture
def account(client) -> int:  # noqa: ANN001
    return client.post_json("/influencers", influencer_body(1, tag="hot")).json["id"]


@pytest.fixture
def bottle_only(wsgi_app, monkeypatch):  # noqa: ANN001, ANN201
    """Fail the test if a request that should be hot reaches bottle."""
    calls: list[str] = []
    original = wsgi_app.wsgi

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return original(environ, start_response)

    monkeypatch.setattr(wsgi_app, "wsgi", wsgi)
    return calls


def test_a_public_detail_is_answered_hot_and_exactly_as_bottle_answers_it(
    client, wsgi_app, account, bottle_only
):  # noqa: ANN001
    hot = _call(wsgi_app, f"/influencers/{account}")
    assert bottle_only == []  # answered without bottle
    assert hot == _call(wsgi_app.wsgi, f"/influencers/{account}")
    status, headers, body = hot
    assert status == "200 OK" and body.startswith(b'{"id":')
    names = {name for name, _ in headers}
    assert {"Etag", "Cache-Control", "Vary", "X-Request-Id", "Content-Type"} <= names


def test_a_revalidation_gets_the_same_empty_304_on_both_paths(client, wsgi_app, account):  # noqa: ANN001
    etag = dict(_call(wsgi_app, f"/influencers/{account}")[1])["Etag"]
    hot = _call(wsgi_app, f"/influencers/{account}", if_none_match=etag)
    assert hot == _call(wsgi_app.wsgi, f"/influencers/{account}", if_none_match=etag)
    assert hot[0].startswith("304") and hot[2] == b""


@pytest.mark.parametrize("path", ["/influencers/999999", "/brands/2147483648", "/influencers/0"])
def test_a_miss_is_the_plugins_404_without_a_second_read(client, wsgi_app, path, queries):  # noqa: ANN001
    with queries as q:
        hot = _call(wsgi_app, path)
    assert q.count <= 1  # the miss is handed over, not read again
    assert hot == _call(wsgi_app.wsgi, path)
    assert hot[0].startswith("404")


def test_callers_with_a_token_go_through_bottle(client, wsgi_app, account, bottle_only):  # noqa: ANN001
    _call(wsgi_app, f"/influencers/{account}", authorization="Bearer not-a-token")
    assert bottle_only == [f"/influencers/{account}"]


def test_a_busy_pool_is_the_plugins_503_and_the_pool_is_not_waited_for_twice(
    client, wsgi_app, account, monkeypatch
):  # noqa: ANN001
    reads: list[int] = []

    def busy(kind: Any, account_id: int, private: bool = False) -> str:
        reads.append(account_id)
        raise MaxConnectionsExceeded("Max connections exceeded, timed out attempting to connect.")

    monkeypatch.setattr(read_side, "account_json", busy)
    status, headers, body = _call(wsgi_app, f"/influencers/{account}")
    assert status.startswith("503") and b'"unavailable"' in body
    assert dict(headers)["Retry-After"]
    assert reads == [account]  # bottle answered what the hot read met, without a second try


@pytest.mark.parametrize(
    "query",
    ["limit=5", "niche=fashion&limit=2", "q=hot", "verified=true", "limit=0", "colour=red"],
)
def test_a_page_is_answered_hot_exactly_as_bottle_answers_it(
    client, wsgi_app, account, query, bottle_only
):  # noqa: ANN001
    hot = _call(wsgi_app, "/influencers", query=query)
    good = not query.startswith(("limit=0", "colour"))
    assert bottle_only == ([] if good else ["/influencers"])  # bad input: bottle answers
    assert hot == _call(wsgi_app.wsgi, "/influencers", query=query)
    assert hot[0].startswith("200" if good else "400")
