"""Shared by the browser tests: Debian's chromium through Playwright, and a running dashboard.

`make test` installs /usr/bin/chromium; never `playwright install` (it downloads a browser).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orgscope import wiring
from orgscope.processes import dashboard_command, dashboard_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("ORGSCOPE_SCREENSHOTS", "screenshots"))


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


@contextmanager
def running_dashboard(config_path: Path) -> Iterator[str]:
    """The dashboard started as `orgscope dashboard` starts it, on a free port; its URL."""
    config = wiring.load(config_path)
    port = free_port()
    process = subprocess.Popen(dashboard_command(config, port), env=dashboard_env(config),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_stcore/health")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium. Missing, the browser tests fail (not skip): `make test`
    installs it, and a skipped browser test would hide that the dashboard was never seen."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` (or `make chromium`) installs "
                    "Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
