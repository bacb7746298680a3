"""How `invoke serve` runs the app: granian (a Rust HTTP server) with the WSGI interface.

Why granian and not gunicorn: measured on this 2-core machine with the same app and
data, one gunicorn gthread worker served ~760 req/s by id (its own per-request Python
work caps a worker near 2,800 req/s even for a constant body), granian ~2,150, against
~750 for the hand-written psycopg2 baseline on a gunicorn sync worker (issue 6).

Each worker process runs the app in `2 x POSTGRES_POOL_MAX` blocking threads: database
waits overlap, and when the database is slow the extra requests wait for a pooled
connection for at most POSTGRES_POOL_TIMEOUT and then get 503 + Retry-After instead of
queueing unseen. SIGTERM stops accepting, lets in-flight requests finish, and each
worker closes its pool as it exits (`cloutsy.api.wsgi`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path

from cloutsy.config import Settings

APP = "cloutsy.api.wsgi:app"


def metrics_dir(settings: Settings) -> Path:
    """A fresh directory where every worker writes its Prometheus metrics."""
    path = settings.data_dir / "metrics" / str(settings.port)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def server_argv(settings: Settings) -> list[str]:
    """The granian command line for `settings` (host, port, workers, pool)."""
    access_log = "--access-log" if settings.is_development else "--no-access-log"
    return [
        sys.executable, "-m", "cloutsy.serving",
        "--interface", "wsgi",
        "--host", settings.host,
        "--port", str(settings.port),
        "--workers", str(settings.workers),
        "--blocking-threads", str(settings.pool_max * 2),
        "--http", "1",
        "--no-ws",
        "--workers-kill-timeout", "10",
        access_log,
        APP,
    ]  # fmt: skip


# --- a port something already listens on ---------------------------------------------------


def _listening_inode(port: int) -> str | None:
    """The socket inode of a TCP listener on `port`, from /proc/net/tcp{,6} (Linux)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            # local_address is HEX_IP:HEX_PORT; state 0A = LISTEN
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return parts[9]
    return None


def _owner(inode: str) -> str | None:
    """`pid N (command)` of the process holding socket `inode`, when this user may see it."""
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"pid {pid} ({name})"
        except OSError:
            continue
    return None


def port_taken(host: str, port: int) -> str | None:
    """Describe what already listens on host:port (None when nothing does).

    granian binds with SO_REUSEPORT, so a second server on a taken port would start and
    split the traffic with the first: connecting first is the only reliable check.
    """
    probe_host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((probe_host, port), timeout=1):
            pass
    except OSError:
        return None
    inode = _listening_inode(port)
    owner = _owner(inode) if inode else None
    return f"{host}:{port} is already in use" + (f" by {owner}" if owner else "")


# --- granian, with its thread-count warning explained once ----------------------------------


class _ThreadWarning(logging.Filter):
    """Drop granian's "... Python threads, which seems quite high" on every start.

    2 x pool threads per worker is deliberate (see the module docstring): `invoke serve`
    says so once in its "serving on" line instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "seems quite high" not in record.getMessage()


def main(argv: list[str]) -> None:
    """Run granian's own command line with `argv`, without its thread-count warning."""
    from granian.cli import entrypoint

    logging.getLogger("_granian").addFilter(_ThreadWarning())
    sys.argv = ["granian", *argv]
    entrypoint()


if __name__ == "__main__":
    main(sys.argv[1:])
