"""Shared by the browser tests: headless Debian chromium through Playwright, and where the
screenshots go. The chromium path and the running dashboard are testkit/browser.py's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.browser import CHROMIUM, CHROMIUM_ARGS, running_dashboard

SCREENSHOTS = Path(os.environ.get("ORGSCOPE_SCREENSHOTS", "screenshots"))


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


@pytest.fixture(scope="module")
def dashboard_url(sample: tuple[Any, ...]) -> Iterator[str]:
    """One dashboard per module, on the module's ``sample`` fixture (its config file first)."""
    with running_dashboard(sample[0]) as url:
        yield url


def settled(page: Any) -> None:
    """Wait until Streamlit's status widget (running...) is gone: the script run ended."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
