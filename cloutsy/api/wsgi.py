"""The WSGI entry point each server worker imports (`cloutsy.api.wsgi:app`).

Settings, logging, the pool and the app, once per worker process; when the worker
exits, its pool is closed (no connection left on the server) and its live metrics
are retired.
"""

from __future__ import annotations

import atexit
import os

from cloutsy.api import create_app, metrics
from cloutsy.config import load_settings, warn_if_insecure
from cloutsy.db import close_database, current, init_database
from cloutsy.logs import configure_logging

settings = load_settings()
configure_logging(settings)
warn_if_insecure(settings)
init_database(settings)
app = create_app(settings)


def _retire() -> None:
    close_database()
    if metrics.MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


atexit.register(_retire)
if metrics.MULTIPROCESS:
    metrics.start_pool_sampler(current().pool_stats)
