"""``orgscope sim``: run the simulated organization in the foreground until Ctrl-C.

:func:`run_sim` starts it, prints the endpoint and the environment that points orgscope (or
the AWS CLI) at it, runs traffic until SIGINT or SIGTERM, then stops cleanly.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from orgscope.config import ConfigError
from orgscope.plugins import load_config
from sim.org import SimulatedOrg
from sim.scenario import ScenarioError
from sim.shapes import HarborOrg

log = logging.getLogger(__name__)


def environment_lines(endpoint_url: str, region: str) -> list[str]:
    """The shell lines that point boto3 (and so orgscope) at the simulator."""
    return [
        f"export AWS_ENDPOINT_URL={endpoint_url}",
        "export AWS_ACCESS_KEY_ID=testing",
        "export AWS_SECRET_ACCESS_KEY=testing",
        f"export AWS_DEFAULT_REGION={region}",
    ]


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_sim(config_path: str, port: int, scenario: str | None, tick_s: float,
            world: str = "quickgrocer") -> int:
    """Run the simulator until SIGINT/SIGTERM. Returns the process exit status.

    ``world``: "quickgrocer" (sim/org.py, the reference organization and its traffic) or
    "harbor" (sim/shapes.py, the second organization: shapes QuickGrocer lacks; no scenario).
    """
    org: SimulatedOrg | HarborOrg
    try:
        config = load_config(config_path)
        if world == "harbor":
            org = HarborOrg(config, port=port)
        else:
            org = SimulatedOrg(config, port=port, tick_s=tick_s,
                               scenario=Path(scenario) if scenario else None)
    except (ConfigError, ScenarioError) as error:
        for line in error.lines:
            sys.stderr.write(line + "\n")
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the simulator", signum)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            endpoint = org.start()
        except OSError as error:
            sys.stderr.write(f"cannot start the simulator on port {port}: {error}\n")
            return 1
        region = config.aws.regions[0]
        _say(f"Simulated {config.organization.name} organization running at {endpoint}")
        rules = len(org.rules) if isinstance(org, HarborOrg) else len(org.deployment.rules)
        _say(f"({len(config.accounts)} accounts, {rules} rules, "
             f"{org.history_hours}h of history, a tick every {tick_s:g}s"
             + (f", scenario {scenario}" if scenario and world != "harbor" else "") + ")")
        _say()
        _say("Point orgscope at it from another shell:")
        for line in environment_lines(endpoint, region):
            _say(f"  {line}")
        _say()
        _say("Ctrl-C stops it (its state lives in memory only).")
        if isinstance(org, HarborOrg):
            org.start_traffic(tick_s)
        else:
            org.start_traffic()
        stop.wait()
        return 0
    finally:
        org.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("simulator stopped")
