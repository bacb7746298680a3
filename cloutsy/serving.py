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

import shutil
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
        sys.executable, "-m", "granian",
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
