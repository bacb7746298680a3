"""Real engines for the scale-out tests: PostgreSQL clusters and streaming replicas, live
`invoke serve` instances, PgBouncer, HAProxy. Each is started by the test, stopped by its
pid, and (clusters, PgBouncer, HAProxy) lives under `.cloutsy/scale/`.

Clusters and processes are the package's own starters (`cloutsy.clusters`,
`cloutsy.bench.servers`), the same the bench uses; here they get the tests' defaults.
Clusters use the embedded server's binaries (PostgreSQL 16, always installed with the
`pgserver` wheel). PgBouncer and HAProxy come from Debian's packages, installed with
apt-get when missing (a fresh CI machine has neither). PgBouncer refuses to run as root,
so as root every engine runs as the `postgres` OS user (the pgbouncer package's own).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cloutsy.bench.servers import Server, wait_healthy
from cloutsy.clusters import Cluster, engine_dir, engine_user
from cloutsy.config import PROJECT_ROOT
from cloutsy.debian import ensure_binary
from cloutsy.ports import free_port, listening, poll

# What the tests use from here (the package's starters with the tests' defaults).
__all__ = [
    "ONE_ADDRESS", "ROOT", "Balancer", "Bouncer", "Cluster", "haproxy_config", "make_cluster",
    "make_replica", "start_server", "wait_healthy", "wait_replayed",
]  # fmt: skip

ROOT = PROJECT_ROOT
BASE = ROOT / ".cloutsy" / "scale"
# Small clusters, UTC, WAL kept long enough for a replica to start from a base backup.
CLUSTER_CONF = {
    "shared_buffers": "'32MB'",
    "max_connections": "60",
    "wal_keep_size": "'64MB'",
    "timezone": "'UTC'",
}
# Every client of these tests is 127.0.0.1: the per-address limits would refuse the
# load itself. The per-phone and per-code limits stay on (the balancer test checks them).
ONE_ADDRESS = "signup_address=off,otp_send_address=off,otp_verify_address=off,login_address=off"


def start_server(log_dir: Path, **env: str) -> Server:
    """`invoke serve` on a free port (development, 2 workers, the tests' admin token), healthy."""
    from tests.conftest import ADMIN_TOKEN

    environ = dict(os.environ, CLOUTSY_WORKERS="2", CLOUTSY_ADMIN_TOKEN=ADMIN_TOKEN)
    return Server.serve({**environ, **env}, log_dir, timeout=60)


def scratch(name: str) -> Path:
    """A fresh directory under `.cloutsy/scale/` owned by the engine user."""
    return engine_dir(BASE / f"{name}-{os.getpid()}-{free_port()}", fresh=True)


def make_cluster(name: str, **conf: str) -> Cluster:
    """A new PostgreSQL 16 cluster (trust on 127.0.0.1, replication allowed), started."""
    return Cluster.create(scratch(name) / "data", **{**CLUSTER_CONF, **conf})


def make_replica(of: Cluster, name: str) -> Cluster:
    """A streaming replica of `of`, started."""
    return Cluster.replica_of(of, scratch(name) / "data")


def wait_replayed(primary: Cluster, replica: Cluster, db: str = "postgres", timeout=10) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    lsn = primary.sql("SELECT pg_current_wal_lsn()::text", db=db)[0][0]
    caught_up = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    assert poll(lambda: replica.sql(caught_up, (lsn,), db=db)[0][0], timeout), (
        "the replica did not catch up"
    )


class Bouncer:
    """PgBouncer (Debian's, 1.18) in transaction mode in front of `cluster`."""

    def __init__(self, cluster: Cluster, pool_size: int, max_clients: int = 200) -> None:
        binary = ensure_binary("pgbouncer", "pgbouncer")
        self.port = port = free_port()
        self.base = base = scratch("pgbouncer")
        (base / "userlist.txt").write_text('"postgres" ""\n')
        (base / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={cluster.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {base / 'userlist.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = {max_clients}\nreserve_pool_size = 0\n"
            "server_reset_query =\nadmin_users = postgres\n"
        )
        user = engine_user()
        for path in base.iterdir():
            if user:
                shutil.chown(path, user, user)
        argv = [binary, str(base / "pgbouncer.ini")]
        ready = lambda: listening(port)  # noqa: E731 - PgBouncer speaks no HTTP
        self.server = Server("pgbouncer", argv, os.environ, port, base, user, ready).start(15)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Balancer:
    """HAProxy (Debian's, 2.6) spreading HTTP over `backends`, health-checking /health."""

    def __init__(self, backends: list[int], check_ms: int = 500) -> None:
        binary = ensure_binary("haproxy", "haproxy")
        self.port = port = free_port()
        self.base = base = scratch("haproxy")
        self.config = haproxy_config(port, backends, check_ms)
        (base / "haproxy.cfg").write_text(self.config)
        argv = [binary, "-db", "-f", str(base / "haproxy.cfg")]
        # Listening is ready: whether a backend is healthy yet is the test's to wait for.
        ready = lambda: listening(port)  # noqa: E731
        self.server = Server("haproxy", argv, os.environ, port, base, ready=ready).start(15)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def haproxy_config(port: int, backends: list[int], check_ms: int) -> str:
    """The balancer configuration the README shows (with this test's ports)."""
    servers = "\n".join(
        f"    server api{i} 127.0.0.1:{p} check inter {check_ms}ms fall 2 rise 2"
        for i, p in enumerate(backends, 1)
    )
    return f"""global
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A refused connection never reached an instance: safe to retry, even a POST.
    retries 2
    retry-on conn-failure
    option redispatch

frontend api
    bind 127.0.0.1:{port}
    default_backend cloutsy

backend cloutsy
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
{servers}
"""
