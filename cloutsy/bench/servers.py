"""Live HTTP servers: the one way the bench and the tests start one, wait for it, stop it.

A `Server` is a subprocess in a session of its own, polled until `GET /health` answers 200
(or it exits), stopped with SIGTERM (it drains and exits 0) and SIGKILL for whatever of
its group outlives that. The bench runs three stacks this way, one at a time: the service
(`invoke serve`, exactly as production runs it), the psycopg2 baseline and the constant
app (both on one gunicorn sync worker).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from cloutsy.bench import BenchError
from cloutsy.bench.load import UNPREPARED
from cloutsy.bench.workload import Dataset
from cloutsy.config import PROJECT_ROOT
from cloutsy.ports import free_port, poll

POOL_MAX = 5
SERVE = [sys.executable, "-m", "invoke", "serve"]


def healthy(url: str) -> bool:
    """True when `url`/health answers 200; False on any other answer or none."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (OSError, ValueError, http.client.HTTPException):
        return False


def wait_healthy(url: str, timeout: float = 30) -> None:
    """Poll `url`/health until it answers 200; BenchError after `timeout` seconds."""
    if not poll(lambda: healthy(url), timeout):
        raise BenchError(f"{url} is not healthy after {timeout:.0f} s")


class Server:
    """A server subprocess on 127.0.0.1:`port`, logging to `log_dir`/`name`-`port`.log.

    Ready when `ready()` holds: by default when /health answers 200; a server that does
    not speak HTTP (PgBouncer, say) passes `lambda: listening(port)`. `user` runs it as
    another OS user (as root, engines that refuse root).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        port: int,
        log_dir: Path,
        user: str | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.port = name, argv, dict(env), port
        self.log = log_dir / f"{name}-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.user = user
        self.ready = ready or (lambda: healthy(self.url))
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def serve(
        cls, env: Mapping[str, str], log_dir: Path, name: str = "serve", timeout: float = 90
    ) -> Server:
        """`invoke serve` with `env` on a free port, started and healthy."""
        port = free_port()
        return cls(name, SERVE, {**env, "CLOUTSY_PORT": str(port)}, port, log_dir).start(timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was never started"
        return self.process.pid

    def start(self, timeout: float = 90) -> Server:
        """Start it in a session of its own and poll `ready`; BenchError if it never is.

        Its own session makes it and its workers one process group to clean up.
        """
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        process = self.process
        if not poll(self.ready, timeout, lambda: process.poll() is not None):
            exited = process.poll() is not None
            self.stop()
            why = "exited at start-up" if exited else f"not ready after {timeout:.0f} s"
            raise BenchError(f"{self.name} {why} (log {self.log}): {self.last_log_line()}")
        return self

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][:300]
        return "(no output)"

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM the server and wait (it drains); SIGKILL its group after `timeout` s.

        Returns its exit code. Workers finishing may outlive their server for a moment:
        the group is awaited too, so the next server measured has the machine to itself.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if not poll(lambda: not _group_alive(self.pid), 5):
            self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole group (server and workers), as a host dying would."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def __enter__(self) -> Server:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def gunicorn_argv(app: str, port: int) -> list[str]:
    """gunicorn with one sync worker, as the user's alternative would be deployed."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--no-control-socket",
        "--log-level",
        "warning",
        app,
    ]


def server_env(data: Dataset) -> dict[str, str]:
    """Environment of a server under test: production, one worker, pool of 5, this dataset."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUTSY_", "POSTGRES_")) and k != "DATABASE_URL"
    }
    env.update(
        CLOUTSY_ENV="production",
        CLOUTSY_WORKERS="1",
        CLOUTSY_HOST="127.0.0.1",
        CLOUTSY_SECRET_KEY=secrets.token_hex(16),
        # The keys the data was seeded with (production requires them to be set).
        CLOUTSY_DATA_KEYS=",".join(
            f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in data.settings.data_keys
        ),
        CLOUTSY_LOOKUP_KEY=base64.b64encode(data.settings.lookup_key).decode(),
        CLOUTSY_DATA_DIR=str(data.settings.data_dir),
        POSTGRES_POOL_MAX=str(POOL_MAX),
        CLOUTSY_BENCH_DSN=data.dsn,
        # The bench measures capacity from one address; the abuse limits would turn its
        # sign-ups into 429s after 60 (they are tested in tests/test_attacks.py).
        CLOUTSY_RATE_LIMITS="signup_address=off",
        # Always by URL: production refuses to start the embedded server itself (issue 12),
        # and the bench's embedded server is already running under its own data dir. As
        # the least-privilege app role, as in production (it refuses a superuser, §9).
        DATABASE_URL=data.app_dsn,
    )
    return env


@contextlib.contextmanager
def start_stack(data: Dataset, stack: str, log_dir: Path) -> Iterator[Server]:
    """One of the bench's stacks serving `data`, healthy, for the duration of the block."""
    env = server_env(data)
    if stack in ("service", UNPREPARED):
        if stack == UNPREPARED:
            env["POSTGRES_PREPARED_STATEMENTS"] = "false"
        server = Server.serve(env, log_dir, stack)
    else:
        app = "baseline:create_app()" if stack == "baseline" else "constant:app"
        port = free_port()
        argv = gunicorn_argv(f"cloutsy.bench.{app}", port)
        server = Server(stack, argv, env, port, log_dir).start()
    with server:
        yield server
