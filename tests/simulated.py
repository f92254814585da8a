"""The simulated organization for tests: started in-process on a free loopback port.

moto's state is process-wide, so one simulator runs at a time; module-scoped fixtures start one
per test module and stop (and reset) it at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from orgscope import wiring
from orgscope.cli import main
from sim.costs import month_start
from sim.org import SimulatedOrg
from tests.conftest import REFERENCE_CONFIG

BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Org:
    """A running simulator and a config file (store beside it) pointed at it."""

    sim: SimulatedOrg
    config_path: Path
    endpoint: str

    def cli(self, *args: str) -> int:
        return main(["--config", str(self.config_path), *args])

    def query(self, sql: str) -> list[dict[str, object]]:
        store = wiring.open_store(wiring.load(self.config_path))
        return [{str(k): v for k, v in row.items()}
                for row in store.query(sql).to_dict("records")]

    @property
    def store_path(self) -> Path:
        return self.config_path.parent / "store"


def clear_of_midnight(margin: timedelta = timedelta(minutes=10)) -> None:
    """Wait until UTC midnight has passed when it is less than ``margin`` away.

    The simulator binds one day's Cost Explorer answers (the bodies the collector sends
    depend on its "today"); a test module that starts at 23:55 and collects after midnight
    compares two days. Only modules that collect cost need this, and it waits only then."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    if midnight - now < margin:
        wait = (midnight - now).total_seconds() + 5
        logging.getLogger(__name__).warning(
            "waiting %.0fs for UTC midnight: cost tests must not straddle two days", wait)
        time.sleep(wait)


#: config.toml's recorded team move (driver-app from driver to delivery), as its text reads.
REFERENCE_TEAM_MOVE = 'team_history = [{ team = "driver", until = 2026-07-15 }]'


def recent_team_move(today: date | None = None, months_ago: int = 4) -> dict[str, str]:
    """A ``replace`` for :func:`simulated_org` that dates config.toml's team move on the 15th,
    ``months_ago`` months before ``today`` (UTC), so the move falls inside a short collected
    history whatever day the tests run on."""
    today = today or datetime.now(UTC).date()
    on = month_start(today, -months_ago).replace(day=15)
    moved = f'team_history = [{{ team = "driver", until = {on.isoformat()} }}]'
    return {REFERENCE_TEAM_MOVE: moved}


@contextmanager
def simulated_org(folder: Path, replace: dict[str, str] | None = None, *,
                  change_events: bool = False) -> Iterator[Org]:
    """Start the simulator with one hour of history; write a config pointing at a store in
    ``folder`` (with each ``replace`` key of config.toml's text replaced by its value); set
    the base credentials and AWS_ENDPOINT_URL for the duration. ``change_events``: deploy the
    change-event rules and queue (``sim.deployment.change_queue_url``)."""
    config_path = folder / "config.toml"
    text = REFERENCE_CONFIG.read_text().replace('path = "./data"', 'path = "./store"')
    for old, new in (replace or {}).items():
        assert old in text, f"config.toml has no {old!r}"
        text = text.replace(old, new)
    config_path.write_text(text.replace("max_attempts = 5", "max_attempts = 1"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in BASE_ENV.items():
            patch.setenv(key, value)
        for key in ("ORGSCOPE_EXTERNAL_ID", "ORGSCOPE_STORE", "ORGSCOPE_CONFIG"):
            patch.delenv(key, raising=False)
        sim = SimulatedOrg(wiring.load(config_path), history_hours=1, tick_s=3600,
                           change_events=change_events)
        endpoint = sim.start()
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        try:
            yield Org(sim, config_path, endpoint)
        finally:
            sim.stop()
