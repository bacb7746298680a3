"""Throwaway PostgreSQL clusters: the bench's PostgreSQL 15, the engine tests' primaries and
replicas, the PITR test's servers. The one way this project starts a cluster of its own.

A `Cluster` lives in a data directory of the caller's, made with `initdb` of the embedded
server's binaries (PostgreSQL 16, always installed with the pgserver wheel) or of Debian's
PostgreSQL `major` (installed with apt-get when missing: issue 14 measures 15, whose planner
chooses differently). It trusts local connections (replication included) and listens on
127.0.0.1 at a free port and on a unix socket in its data directory, both given on its
command line: a data directory kept between runs, or copied by `pg_basebackup` or a
point-in-time restore, starts where its caller says. It is stopped by the postmaster's
pid. As root the binaries refuse to run, so they run as the `postgres` OS user (created
when missing).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from cloutsy import debian, embedded
from cloutsy.errors import CloutsyError, TaskError
from cloutsy.ports import free_port, poll
from cloutsy.progress import Say

DEBIAN_BIN = "/usr/lib/postgresql/{major}/bin"
ENGINE_USER = "postgres"


class ClusterError(TaskError):
    """A throwaway cluster could not be installed, made, started or stopped."""


def engine_user() -> str | None:
    """The OS user clusters run as: `postgres` as root (created if missing), else ourselves."""
    if os.geteuid() != 0:
        return None
    if subprocess.run(["id", "-u", ENGINE_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", ENGINE_USER], check=True)
    return ENGINE_USER


def engine_dir(path: Path, fresh: bool = False) -> Path:
    """`path` as a directory the engine user owns and can reach (emptied first when `fresh`)."""
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    user = engine_user()
    if user:
        shutil.chown(path, user, user)
        for parent in (path.parent, path.parent.parent):  # the engine user must get in
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o755)
    return path


def bin_dir(major: int | None = None, progress: Say = print) -> Path:
    """The binaries of PostgreSQL `major` (None: the embedded server's), installed when missing."""
    if major is None:
        return embedded.bin_dir()
    path = Path(DEBIAN_BIN.format(major=major))
    if not (path / "initdb").exists():
        debian.install(f"postgresql-{major}", progress)
        if not (path / "initdb").exists():
            raise ClusterError(f"postgresql-{major} installed but {path} is missing")
    return path


def run_as_engine(argv: list[str], timeout: float = 120) -> str:
    """Run a PostgreSQL binary as the engine user; its stdout, or ClusterError naming it."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, user=engine_user()
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{Path(argv[0]).name} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise ClusterError(f"{Path(argv[0]).name} failed: {tail}")
    return done.stdout


class Cluster:
    """A PostgreSQL cluster in `datadir` on 127.0.0.1:`port`; `with` stops it at the end."""

    def __init__(self, datadir: Path, major: int | None = None, port: int = 0) -> None:
        self.datadir, self.major, self.port = datadir, major, port

    @classmethod
    def create(
        cls,
        datadir: Path,
        major: int | None = None,
        progress: Say = print,
        **conf: str,
    ) -> Cluster:
        """initdb (unless `datadir` holds a cluster already), `conf` lines, then start."""
        binaries = bin_dir(major, progress)
        engine_dir(datadir.parent)
        cluster = cls(datadir, major)
        if not (datadir / "PG_VERSION").exists():
            run_as_engine(
                [
                    str(binaries / "initdb"), "-D", str(datadir), "-U", "postgres",
                    "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                ]
            )  # fmt: skip
            if conf:
                cluster.configure(**conf)
        cluster.start()
        return cluster

    @classmethod
    def replica_of(cls, primary: Cluster, datadir: Path) -> Cluster:
        """A streaming replica of `primary`: `pg_basebackup -R -X stream`, then start."""
        engine_dir(datadir.parent)
        run_as_engine(
            [
                str(primary.binaries / "pg_basebackup"), "-h", "127.0.0.1",
                "-p", str(primary.port), "-U", "postgres", "-D", str(datadir),
                "-R", "-X", "stream", "-c", "fast",
            ]
        )  # fmt: skip
        replica = cls(datadir, primary.major)
        # A standby must not wait for itself if it is promoted (the failover test).
        replica.configure(synchronous_standby_names="''")
        replica.start()
        return replica

    @property
    def binaries(self) -> Path:
        return bin_dir(self.major)

    @property
    def log(self) -> Path:
        """The server's log, beside its data directory."""
        return self.datadir.parent / "server.log"

    def configure(self, **settings: str) -> None:
        """Append `name = value` lines to postgresql.conf (later lines win)."""
        lines = [f"{k} = {v}" for k, v in settings.items()]
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        """Start on `port` (a free one the first time) and wait until it accepts connections."""
        self.port = self.port or free_port()
        where = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {shlex.quote(str(self.datadir))}"
        run_as_engine(
            [
                str(self.binaries / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
                "-l", str(self.log), "-o", where, "start",
            ]
        )  # fmt: skip

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from `postmaster.pid` (None when it is not running)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the postmaster by pid: "fast" (SIGINT), or "immediate" (SIGQUIT: a crash)."""
        pid = self.pid
        if pid is None:
            return
        signals = [signal.SIGINT, signal.SIGQUIT] if mode == "fast" else [signal.SIGQUIT]
        for sig in signals:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if poll(lambda: not _alive(pid), timeout):
                return
        raise ClusterError(f"the postmaster {pid} of {self.datadir} did not exit")

    def promote(self) -> None:
        run_as_engine([str(self.binaries / "pg_ctl"), "-D", str(self.datadir), "-w", "promote"])

    def url(self, database: str = "postgres") -> str:
        """The URL of `database` on this cluster (user postgres, trust, TCP)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(
        self, statement: str, params: tuple[Any, ...] = (), db: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows (empty for none)."""
        import psycopg2

        conn = psycopg2.connect(self.url(db), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def remove(self) -> None:
        """Crash-stop the cluster and delete the directory holding it."""
        with contextlib.suppress(CloutsyError):
            self.stop("immediate")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A postmaster this process forked itself lingers as a zombie until reaped.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True
