"""A real browser: headless Chromium (Debian's package) loads a page from another origin
whose script calls `invoke serve` with fetch() — preflights, an idempotent retry, exposed
headers and a revalidation — and a page from an origin not in CLOUTSY_CORS_ORIGINS, whose
calls the browser must refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloutsy.ports import free_port
from tests.engines import start_server

PAGE = """<!doctype html><meta charset="utf-8"><title>cors</title><pre id="out">pending</pre>
<script>
const API = "%(api)s";
(async () => {
  const out = {};
  try {
    const body = JSON.stringify({name: "Web", username: "webuser",
                                 email: "web@example.com", phone: "9812300088"});
    const post = {method: "POST", body,
                  headers: {"Content-Type": "application/json", "Idempotency-Key": "browser-1"}};
    const first = await fetch(API + "/influencers", post);
    const again = await fetch(API + "/influencers", post);
    out.first = first.status;
    out.again = again.status;
    out.location = first.headers.get("Location");
    out.againLocation = again.headers.get("Location");
    out.requestId = first.headers.get("X-Request-Id");
    out.id = (await again.json()).id;
    const niches = await fetch(API + "/niches", {cache: "no-store"});
    out.etag = niches.headers.get("ETag");
    const check = await fetch(API + "/niches",
                              {cache: "no-store", headers: {"If-None-Match": out.etag}});
    out.revalidated = check.status;
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script>
"""


def ensure_chromium() -> str:
    """Chromium from Debian's packages, installed by apt-get when missing (CI runs as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = shutil.which("apt-get")
    assert apt and os.geteuid() == 0, "chromium is missing and cannot be installed with apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        [apt, "update", "-qq"],
        [apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq",
         "--no-install-recommends", "chromium"],
    ):  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=900, env=env)
    found = shutil.which("chromium")
    assert found, "apt-get install chromium left no chromium on PATH"
    return found


@contextmanager
def page_server(html: dict[str, str]) -> Iterator[str]:
    """Serve html["page"] at / on a free port: another origin than the API's."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            data = html["page"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def run_page(chromium: str, url: str, tmp_path) -> dict:
    """Load `url` in headless Chromium and return what its script wrote into #out."""
    profile = tmp_path / f"profile-{free_port()}"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    start = dom.find('<pre id="out">') + len('<pre id="out">')
    text = dom[start : dom.find("</pre>", start)]
    assert text and text != "pending", f"the page did not finish: {dom[-500:]} {done.stderr[-500:]}"
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.slow
def test_a_browser_on_an_allowed_origin_calls_the_api_and_others_are_refused(committed, tmp_path):
    chromium = ensure_chromium()
    html: dict[str, str] = {}
    with page_server(html) as allowed, page_server(html) as other:
        server = start_server(tmp_path, CLOUTSY_WORKERS="1", CLOUTSY_CORS_ORIGINS=allowed)
        html["page"] = PAGE % {"api": server.url}
        try:
            seen = run_page(chromium, allowed, tmp_path)
            refused = run_page(chromium, other, tmp_path)
        finally:
            server.stop()
    assert "error" not in seen, seen
    assert seen["first"] == 201 and seen["again"] == 201  # the retry replayed, no 409
    assert seen["location"] == seen["againLocation"] == f"/influencers/{seen['id']}"
    assert seen["requestId"] and seen["etag"].startswith('W/"')  # exposed to the script
    assert seen["revalidated"] == 304
    assert "Failed to fetch" in refused.get("error", ""), refused
    with committed.connection_context():
        from cloutsy.models import Influencer

        assert Influencer.select().where(Influencer.username == "webuser").count() == 1
