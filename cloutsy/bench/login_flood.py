"""Measure issue 12's promise: a login flood does not take reads down on the same worker.

`python -m cloutsy.bench.login_flood URL INFLUENCER_ID` against a running one-worker
service started with `CLOUTSY_RATE_LIMITS=login_email=off,login_address=off` (so every
login really runs Argon2): GET /influencers/{id} under wrk (16 connections, 10 s) alone,
then again while 50 connections send wrong-password logins. Prints req/s and errors of
both and the ratio (target: >= 0.5 with 0 errors on the reads).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cloutsy.bench.load import HERE, Wrk, ensure_wrk

READ_S = 10
# wrk's default, as when this was first measured (the bench's own runs allow 5 s).
TIMEOUT_S = 2


def main(url: str, influencer_id: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cloutsy-flood-") as tmp:
        wrk = Wrk(ensure_wrk(print), Path(tmp))
        read = wrk.paths_file("read", [f"/influencers/{influencer_id}"])
        alone = wrk.measure_paths(url, read, READ_S, timeout_s=TIMEOUT_S)
        flood_s = READ_S + 4
        login = f"{url}/auth/brands/login"
        argv = wrk.argv(login, HERE / "login_flood.lua", (), flood_s, 50, TIMEOUT_S)
        flood = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        time.sleep(2)  # the flood at full strength before the reads start: time is the point
        loaded = wrk.run(url, "paths", [str(read)], READ_S, timeout_s=TIMEOUT_S)
        flood_out, _ = flood.communicate()
    line = re.search(
        r"FLOOD requests=(\d+) s401=(\d+) s503=(\d+) other=(\d+) sockerr=(\d+)", flood_out
    )
    seconds = float(re.search(r"requests in ([\d.]+)s", flood_out).group(1))  # type: ignore[union-attr]
    print(f"GET /influencers/{{id}} alone:       {alone.rps:8.1f} req/s, {alone.errors} errors")
    print(f"GET /influencers/{{id}} under flood: {loaded.rps:8.1f} req/s, {loaded.errors} errors")
    print(f"ratio: {loaded.rps / alone.rps:.2f} (target >= 0.50, 0 errors)")
    if line:
        total, s401, s503, other, sock = (int(x) for x in line.groups())
        print(
            f"logins: {total} in {seconds:.1f} s: {s401} x 401 (Argon2 ran), {s503} x 503 "
            f"(no hashing slot free), {other} other, {sock} socket errors"
        )


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), int(sys.argv[2]))
