"""gunicorn settings for `invoke serve` (read from the same environment as the app).

It lives outside `cloutsy.api` on purpose: importing it must not import the metrics
module before PROMETHEUS_MULTIPROC_DIR is set, or workers would not aggregate.

Threaded workers (gthread): database waits overlap and keep-alive spares clients a
TCP handshake per request. Twice as many threads as pooled connections, so that when
the database is slow the extra requests wait for a connection for at most
POSTGRES_POOL_TIMEOUT and then get 503 + Retry-After, instead of queueing unseen in
gunicorn. SIGTERM lets in-flight requests finish (graceful_timeout), then each worker
closes its pool.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from cloutsy.config import load_settings

_settings = load_settings()

# Metrics from every worker are aggregated through files in this directory.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cloutsy-metrics-")

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "gthread"
threads = _settings.pool_max * 2
keepalive = 5
graceful_timeout = 8
timeout = 30
accesslog = "-"
errorlog = "-"
# The access log omits the query string: it can carry search terms and cursors.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
control_socket_disable = True
proc_name = "cloutsy"


def on_starting(server) -> None:  # noqa: ANN001
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def post_worker_init(worker) -> None:  # noqa: ANN001
    from cloutsy.api import metrics
    from cloutsy.db import current

    metrics.start_pool_sampler(current().pool_stats)


def worker_exit(server, worker) -> None:  # noqa: ANN001
    from cloutsy.db import close_database

    close_database()


def child_exit(server, worker) -> None:  # noqa: ANN001
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:  # noqa: ANN001
    shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)
