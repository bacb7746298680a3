"""Local TCP ports for the servers the bench, the tests and the PITR drills start.

One `free_port` for all of them: a port the kernel just handed out and nobody listens
on. Another process may take it before ours binds it; the starters fail loudly then.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def poll(
    ready: Callable[[], bool], timeout: float, gave_up: Callable[[], bool] = lambda: False
) -> bool:
    """Poll `ready` every 50 ms until it holds (True), `gave_up` holds or `timeout` ends (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if gave_up() or time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
