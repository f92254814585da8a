"""The simulated QuickGrocer organization on moto's local server (docs/simulator.md)."""

from sim.org import SimulatedOrg
from sim.scenario import ScenarioError, load_scenario

__all__ = ["ScenarioError", "SimulatedOrg", "load_scenario"]
