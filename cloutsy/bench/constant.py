"""The HTTP ceiling: a WSGI app answering every GET with a prebuilt JSON body.

Same server, same worker model, no database and no serialisation: whatever
requests/s it reaches is the most any app can get from gunicorn + wrk on this
machine. Bodies are the size of real answers (one public view; a page of 20).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

ONE: dict[str, Any] = {
    "id": 4242,
    "name": "Aarav Sharma",
    "username": "aarav.sharma42",
    "gender": "male",
    "bio": "Travel and food stories from the road; weekly reels and honest reviews.",
    "profileImage": "https://cdn.example.com/avatars/4242.jpg",
    "isPhoneVerified": True,
    "isActive": True,
    "createdAt": "2026-03-14T09:26:53.589793+00:00",
    "updatedAt": "2026-03-14T09:26:53.589793+00:00",
    "niches": [
        {"id": 3, "name": "Food", "slug": "food", "icon": "🍽️"},
        {"id": 4, "name": "Travel", "slug": "travel", "icon": "✈️"},
    ],
}
BY_ID_BODY = json.dumps(ONE, ensure_ascii=False).encode()
PAGE_BODY = json.dumps({"items": [ONE] * 20, "nextCursor": "4222"}, ensure_ascii=False).encode()
HEALTH_BODY = b'{"status":"ok"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer /influencers with a page, /influencers/... with one view, anything else ok."""
    path = environ.get("PATH_INFO", "")
    if path == "/influencers":
        body = PAGE_BODY
    elif path.startswith("/influencers/"):
        body = BY_ID_BODY
    else:
        body = HEALTH_BODY
    start_response(
        "200 OK",
        [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
