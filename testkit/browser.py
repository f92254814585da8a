"""Debian's chromium and a running dashboard, for the browser tests and the render benchmark.

`make test` installs /usr/bin/chromium; never `playwright install` (it downloads a browser).
The dashboard is started exactly as `orgscope dashboard` starts it
(:func:`orgscope.processes.dashboard_command`), on a free local port.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orgscope import wiring
from orgscope.processes import dashboard_command, dashboard_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass(frozen=True)
class Dashboard:
    """A dashboard process that answers: where, and its process id (for /proc readings)."""

    url: str
    pid: int


@contextmanager
def dashboard_process(config_path: Path, *, port: int | None = None, cwd: Path | None = None,
                      timeout: float = 60, stop_timeout: float = 20) -> Iterator[Dashboard]:
    """The dashboard started as `orgscope dashboard` starts it, once its health check answers
    (within ``timeout`` s); on ``port`` (a free one unless given) and in ``cwd`` (Streamlit
    reads .streamlit/secrets.toml from there). Terminated on exit."""
    config = wiring.load(config_path)
    port = free_port() if port is None else port
    process = subprocess.Popen(dashboard_command(config, port), env=dashboard_env(config),
                               cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_stcore/health", timeout=timeout)
        yield Dashboard(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=stop_timeout)


@contextmanager
def running_dashboard(config_path: Path) -> Iterator[str]:
    """:func:`dashboard_process` with its defaults; its URL."""
    with dashboard_process(config_path) as dashboard:
        yield dashboard.url
