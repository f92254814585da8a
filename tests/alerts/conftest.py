"""Fixtures shared by the alerts tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.slack_sink import SlackSink


@pytest.fixture(scope="module")
def sink() -> Iterator[SlackSink]:
    """The local Slack webhook recorder, one per test module (tests clear it)."""
    server = SlackSink()
    server.start()
    yield server
    server.stop()
