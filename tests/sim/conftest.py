"""Fixtures that start the simulated organization in-process on a free loopback port.

moto's state is process-wide, so each module gets its own simulator, started once and
stopped (and reset) at the end of the module.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orgscope.aws import SessionFactory
from orgscope.config import Config
from orgscope.plugins import parse_config
from sim.org import SimulatedOrg, floor_minute

ROOT = Path(__file__).resolve().parents[2]
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def sim_config(tmp: Path) -> Config:
    data = tomllib.loads((ROOT / "config.toml").read_text())
    data["store"] = {"path": str(tmp / "store")}
    data["aws"]["max_attempts"] = 1
    return parse_config(data, "config.toml")


@dataclass
class Running:
    """A started simulator, its config, and a clock tests advance for tick()."""

    org: SimulatedOrg
    config: Config
    now: datetime

    def advance(self, minutes: int) -> tuple[datetime, datetime]:
        """Tick ``minutes`` into the future; returns the [start, end) minutes simulated."""
        start = floor_minute(self.now)
        self.now += timedelta(minutes=minutes)
        self.org.tick(self.now)
        return start, floor_minute(self.now)

    def factory(self) -> SessionFactory:
        """A fresh orgscope session factory (no cached sessions) against the simulator."""
        return SessionFactory(self.config.aws)


def start_sim(tmp: Path, env: dict[str, str], scenario: Path | None = None
              ) -> Iterator[Running]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**BASE_ENV, **env}.items():
            patch.setenv(key, value)
        config = sim_config(tmp)
        org = SimulatedOrg(config, history_hours=1, scenario=scenario, tick_s=3600)
        endpoint = org.start()
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        assert org.started_at is not None
        try:
            yield Running(org, config, org.started_at)
        finally:
            org.stop()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from start_sim(tmp_path_factory.mktemp("sim"), {})
