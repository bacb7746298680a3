"""Debian packages the bench and the engine tests install when they are missing.

wrk, PgBouncer, HAProxy and other PostgreSQL majors come from Debian's packages: a
fresh CI machine has none of them. apt-get runs as root, or through `sudo -n` when
that is allowed; otherwise the error says which command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cloutsy.errors import TaskError
from cloutsy.progress import Say

SBIN = "/usr/sbin:/usr/bin:/sbin"
# Installing postgresql-N would otherwise create and start a `main` cluster on port 5432.
CREATECLUSTER = Path("/etc/postgresql-common/createcluster.conf")


class InstallError(TaskError):
    """A Debian package could not be installed."""


def _apt() -> list[str]:
    apt = shutil.which("apt-get")
    if apt is None:
        return []
    if os.geteuid() == 0:
        return [apt]
    sudo = shutil.which("sudo")
    allowed = sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0
    return [sudo, "-n", apt] if allowed and sudo else []


def install(package: str, progress: Say = print) -> None:
    """`apt-get install` one package (after `apt-get update`), without recommends."""
    apt = _apt()
    if not apt:
        raise InstallError(f"{package} is not installed (apt-get install -y {package})")
    progress(f"installing {package} from Debian's packages ...")
    if package.startswith("postgresql-") and os.geteuid() == 0 and not CREATECLUSTER.exists():
        CREATECLUSTER.parent.mkdir(parents=True, exist_ok=True)
        CREATECLUSTER.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    options = ["-y", "-qq", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"]
    for argv in ([*apt, "update", "-qq"], [*apt, "install", *options, package]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise InstallError(f"could not install {package}: {tail[-1] if tail else argv}")


def ensure_binary(binary: str, package: str, progress: Say = print) -> str:
    """The path of `binary`, installing `package` first when it is missing."""
    found = shutil.which(binary) or shutil.which(binary, path=SBIN)
    if not found:
        install(package, progress)
        found = shutil.which(binary) or shutil.which(binary, path=SBIN)
    if not found:
        raise InstallError(f"{package} installed but {binary} is not on the PATH")
    return found
