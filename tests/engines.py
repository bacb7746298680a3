"""Real engines for the scale-out tests: PostgreSQL clusters and streaming replicas, PgBouncer,
HAProxy. Each is started by the test, stopped by its pid, and lives under `.cloutsy/scale/`.

Clusters use the embedded server's own binaries (PostgreSQL 16, always installed with the
`pgserver` wheel), listening on 127.0.0.1 at a free port so a replica and PgBouncer can
reach them. PgBouncer and HAProxy come from Debian's packages: `ensure_tool` installs them
with apt-get when missing (a fresh CI machine has neither). PgBouncer refuses to run as
root, so as root every engine runs as the `postgres` OS user (the pgbouncer package's own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest

from cloutsy import embedded
from tests.helpers import ROOT
from tests.test_server import free_port

BASE = ROOT / ".cloutsy" / "scale"
ENGINE_USER = "postgres"


def _as_root() -> bool:
    return os.geteuid() == 0


def ensure_tool(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` with apt-get when it is missing."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin")
    if found:
        return found
    sudo = [] if _as_root() else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"could not install {package}: {result.stderr.strip()[-400:]}")
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin")
    if not found:
        pytest.fail(f"{package} installed but {binary} is not on the PATH")
    return found


def engine_user() -> str | None:
    """The OS user the engines run as: `postgres` as root (created if missing), else ourselves."""
    if not _as_root():
        return None
    if subprocess.run(["id", "-u", ENGINE_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", ENGINE_USER], check=True)
    return ENGINE_USER


def private_dir(name: str) -> Path:
    """A fresh directory under `.cloutsy/scale/` owned by the engine user."""
    BASE.mkdir(parents=True, exist_ok=True)
    path = BASE / f"{name}-{os.getpid()}-{free_port()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    user = engine_user()
    if user:
        shutil.chown(path, user, user)
        for parent in (BASE, BASE.parent):  # the engine user must be able to reach it
            parent.chmod(parent.stat().st_mode | 0o755)
    return path


def _run(*cmd: str, timeout: float = 60) -> str:
    result = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, user=engine_user()
    )
    if result.returncode != 0:
        raise AssertionError(f"{Path(cmd[0]).name} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit within {timeout} s")


class Cluster:
    """A PostgreSQL cluster on 127.0.0.1:port, its data under `.cloutsy/scale/`."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir, self.port = datadir, port

    @classmethod
    def create(cls, name: str, **conf: str) -> Cluster:
        """initdb (trust on 127.0.0.1, replication allowed) and start."""
        base = private_dir(name)
        datadir = base / "data"
        bin_dir = embedded.bin_dir()
        _run(
            str(bin_dir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        cluster = cls(datadir, free_port())
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{datadir}'",
            "shared_buffers": "'32MB'",
            "max_connections": "60",
            "wal_keep_size": "'64MB'",
            "timezone": "'UTC'",
            **conf,
        }
        cluster.configure(**settings)
        cluster.start()
        return cluster

    @classmethod
    def replica_of(cls, primary: Cluster, name: str) -> Cluster:
        """A streaming replica of `primary`: `pg_basebackup -R -X stream`, then start."""
        datadir = private_dir(name) / "data"
        _run(
            str(embedded.bin_dir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", "postgres", "-D", str(datadir), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        replica = cls(datadir, free_port())
        replica.configure(
            unix_socket_directories=f"'{datadir}'",
            # A standby must not wait for itself if it is promoted (the failover test).
            synchronous_standby_names="''",
        )
        replica.start()
        return replica

    def configure(self, **settings: str) -> None:
        """Append `name = value` lines (later lines win), with this cluster's port."""
        lines = [f"port = {self.port}", *(f"{k} = {v}" for k, v in settings.items())]
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as f:
            f.write("\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        _run(
            str(embedded.bin_dir() / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
            "-l", str(self.datadir.parent / "server.log"), "start",
        )  # fmt: skip

    @property
    def pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        """Stop the postmaster by its pid: SIGINT = fast, SIGQUIT = immediate (a crash)."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        wait_gone(pid)

    def promote(self) -> None:
        _run(str(embedded.bin_dir() / "pg_ctl"), "-D", str(self.datadir), "-w", "promote")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, params: tuple = (), db: str = "postgres") -> list[tuple]:
        """Run one statement in autocommit; its rows (empty for none)."""
        conn = psycopg2.connect(self.url(db), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def wait_replayed(primary: Cluster, replica: Cluster, db: str = "postgres", timeout=10) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    lsn = primary.sql("SELECT pg_current_wal_lsn()::text", db=db)[0][0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,), db=db)[0][0]
        if done:
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


class Process:
    """An engine process started by a test, stopped by its pid."""

    def __init__(
        self, argv: list[str], log: Path, user: str | None = None, env: dict | None = None
    ) -> None:
        self.log = log
        self.handle = log.open("w")
        # A session of its own: the process and its children form one group to kill.
        self.process = subprocess.Popen(
            argv,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            user=user,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.handle.close()


# Every client of these tests is 127.0.0.1: the per-address limits would refuse the
# load itself. The per-phone and per-code limits stay on (the balancer test checks them).
ONE_ADDRESS = "signup_address=off,otp_send_address=off,otp_verify_address=off,login_address=off"


class Instance(Process):
    """One `invoke serve` (an API host) on a free port, in a process group of its own."""

    def __init__(self, log_dir: Path, **env_extra: str) -> None:
        import sys

        from tests.conftest import ADMIN_TOKEN

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            CLOUTSY_PORT=str(self.port),
            CLOUTSY_ADMIN_TOKEN=ADMIN_TOKEN,
            CLOUTSY_RATE_LIMITS=ONE_ADDRESS,
        )
        env.update(env_extra)
        log = log_dir / f"serve-{self.port}.log"
        super().__init__([sys.executable, "-m", "invoke", "serve"], log, env=env)
        wait_port(self.port, timeout=60, process=self)
        wait_healthy(self.url)

    def kill(self) -> None:
        """SIGKILL the whole instance (server and workers), as a host dying would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def wait_healthy(url: str, timeout: float = 30) -> None:
    from tests.helpers import http

    deadline = time.monotonic() + timeout
    while True:
        try:
            if http("GET", f"{url}/health")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} is not healthy after {timeout} s"
        time.sleep(0.1)


def wait_port(port: int, timeout: float = 15, process: Process | None = None) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process is not None and process.process.poll() is not None:
            break
        time.sleep(0.05)
    text = process.log.read_text()[-2000:] if process else ""
    raise AssertionError(f"nothing listens on {port}: {text}")


class Bouncer(Process):
    """PgBouncer (Debian's, 1.18) in transaction mode in front of `cluster`."""

    def __init__(self, cluster: Cluster, pool_size: int, max_clients: int = 200) -> None:
        binary = ensure_tool("pgbouncer", "pgbouncer")
        self.port = free_port()
        base = private_dir("pgbouncer")
        (base / "userlist.txt").write_text('"postgres" ""\n')
        (base / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={cluster.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {base / 'userlist.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = {max_clients}\nreserve_pool_size = 0\n"
            "server_reset_query =\nadmin_users = postgres\n"
        )
        user = engine_user()
        for path in base.iterdir():
            if user:
                shutil.chown(path, user, user)
        self.base = base
        super().__init__([binary, str(base / "pgbouncer.ini")], base / "pgbouncer.log", user)
        wait_port(self.port, process=self)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)
        shutil.rmtree(self.base, ignore_errors=True)


class Balancer(Process):
    """HAProxy (Debian's, 2.6) spreading HTTP over `backends`, health-checking /health."""

    def __init__(self, backends: list[int], check_ms: int = 500) -> None:
        binary = ensure_tool("haproxy", "haproxy")
        self.port = free_port()
        base = private_dir("haproxy")
        self.config = haproxy_config(self.port, backends, check_ms)
        (base / "haproxy.cfg").write_text(self.config)
        self.base = base
        super().__init__([binary, "-db", "-f", str(base / "haproxy.cfg")], base / "haproxy.log")
        wait_port(self.port, process=self)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)
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
