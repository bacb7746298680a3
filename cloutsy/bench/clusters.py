"""Throwaway PostgreSQL clusters of other major versions, for the bench and the plan test.

The embedded server is PostgreSQL 16; Debian 12 (and many managed services) still run
15, whose planner chooses differently (issue 14). A `Cluster` is made with that
version's own `initdb` in a directory of the caller's, listens on 127.0.0.1 at a free
port and a unix socket in its directory, trusts local connections, and is stopped by
the postmaster's pid when the `with` block ends. As root the binaries refuse to run,
so they run as the `postgres` OS user (which Debian's package creates).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cloutsy.bench.runner import free_port
from cloutsy.errors import CloutsyError

DEBIAN_BIN = "/usr/lib/postgresql/{major}/bin"
Progress = Callable[[str], None]


class ClusterError(CloutsyError):
    """A throwaway cluster could not be installed, made or started."""


def bin_dir(major: int) -> Path | None:
    """Debian's binaries of PostgreSQL `major`, or None when that version is not installed."""
    path = Path(DEBIAN_BIN.format(major=major))
    return path if (path / "initdb").exists() else None


def ensure_installed(major: int, progress: Progress = print) -> Path:
    """The binaries of PostgreSQL `major`, installed from Debian's packages when missing.

    Only the server package is installed; its clusters are ours to make (apt's own
    default cluster, if the package creates one, is left alone).
    """
    found = bin_dir(major)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise ClusterError(
            f"PostgreSQL {major} is not installed (apt-get install -y postgresql-{major})"
        )
    progress(f"installing postgresql-{major} from Debian's packages ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", f"postgresql-{major}"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(f"could not install postgresql-{major}: {tail[-1] if tail else ''}")
    found = bin_dir(major)
    if not found:
        where = DEBIAN_BIN.format(major=major)
        raise ClusterError(f"postgresql-{major} installed but {where} is missing")
    return found


def _user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _chown(path: Path) -> None:
    user = _user()
    if user:
        shutil.chown(path, user, user)


class Cluster:
    """A PostgreSQL `major` cluster under `base`, running while inside `with`."""

    def __init__(
        self, major: int, base: Path, progress: Progress = print, durable: bool = True
    ) -> None:
        self.major = major
        # Tests trade durability for speed; the bench keeps the defaults the embedded 16 has.
        self.durable = durable
        self.base = base
        self.pgdata = base / "pgdata"
        self.port = 0
        self.pid: int | None = None
        self.progress = progress

    def dsn(self, database: str = "postgres") -> str:
        """The URL of `database` on this cluster (user postgres, trust, TCP)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, user=_user())
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(f"{Path(argv[0]).name} failed: {tail[-1] if tail else ''}")

    def __enter__(self) -> Cluster:
        binaries = ensure_installed(self.major, self.progress)
        self.base.mkdir(parents=True, exist_ok=True)
        # The server refuses a data directory others can read, and its user must reach it.
        os.chmod(self.base, 0o755)
        _chown(self.base)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        self.port = free_port()
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self.pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT) of the postmaster by pid; SIGQUIT if it lingers."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
