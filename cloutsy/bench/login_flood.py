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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOCKET_ERRORS = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"


def wrk(url: str, connections: int, seconds: int, script: str | None = None) -> list[str]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        argv += ["-s", str(HERE / script)]
    return [*argv, url]


def figures(output: str) -> tuple[float, int]:
    """(requests/s, errors) from wrk's report: non-2xx/3xx answers plus socket errors."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if found:
        errors += int(found.group(1))
    sock = re.search(SOCKET_ERRORS, output)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return rps, errors


def main(url: str, influencer_id: int) -> None:
    read = f"{url}/influencers/{influencer_id}"
    subprocess.run(wrk(read, 16, 3), capture_output=True, check=True)  # warm-up
    alone = subprocess.run(wrk(read, 16, 10), capture_output=True, text=True, check=True).stdout
    flood = subprocess.Popen(
        wrk(f"{url}/auth/brands/login", 50, 14, "login_flood.lua"),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    loaded = subprocess.run(wrk(read, 16, 10), capture_output=True, text=True, check=True).stdout
    flood_out, _ = flood.communicate()
    base_rps, base_err = figures(alone)
    load_rps, load_err = figures(loaded)
    line = re.search(
        r"FLOOD requests=(\d+) s401=(\d+) s503=(\d+) other=(\d+) sockerr=(\d+)", flood_out
    )
    seconds = float(re.search(r"requests in ([\d.]+)s", flood_out).group(1))  # type: ignore[union-attr]
    print(f"GET /influencers/{{id}} alone:       {base_rps:8.1f} req/s, {base_err} errors")
    print(f"GET /influencers/{{id}} under flood: {load_rps:8.1f} req/s, {load_err} errors")
    print(f"ratio: {load_rps / base_rps:.2f} (target >= 0.50, 0 errors)")
    if line:
        total, s401, s503, other, sock = (int(x) for x in line.groups())
        print(
            f"logins: {total} in {seconds:.1f} s: {s401} x 401 (Argon2 ran), {s503} x 503 "
            f"(no hashing slot free), {other} other, {sock} socket errors"
        )


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), int(sys.argv[2]))
