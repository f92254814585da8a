"""Scenario timelines: faults to inject at set times after the simulator starts.

A scenario is a TOML file with one ``[[events]]`` table per entry (docs/simulator.md)::

    [[events]]
    at = "+10m"                 # after the simulator started: +<n>s, +<n>m or +<n>h
    action = "disable_rule"
    account = "121212121212"
    bus = "central-bus"         # optional, default "default"
    rule = "order-placed-to-inventory"

:func:`load_scenario` checks every entry and raises :class:`ScenarioError` with one line per
problem, naming the entry, the key and what is allowed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sim.topology import SCHEMA_CHANGES
from sim.tracing import SERVICES

_AT_RE = re.compile(r"^\+(\d+)([smh])$")
_DURATION_RE = re.compile(r"^(\d+)([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_ACCOUNT_RE = re.compile(r"^\d{12}$")

#: action -> (required keys, optional keys) besides ``at`` and ``action``.
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "disable_rule": (("account", "rule"), ("bus",)),
    "enable_rule": (("account", "rule"), ("bus",)),
    "break_pattern": (("account", "rule"), ("bus",)),
    "remove_bus_permission": (("account", "principal"), ("bus",)),
    "target_errors": (("account", "rule", "rate", "duration"), ("bus",)),
    "throttle": (("account", "rule", "rate", "duration"), ("bus",)),
    "latency": (("account", "rule", "ms", "duration"), ("bus",)),
    "break_account": (("account",), ("how",)),
    "repair_account": (("account",), ()),
    "cost_spike": (("account", "service", "usage_type", "factor", "days"), ()),
    "latency_spike": (("service", "ms", "duration"), ()),
    "error_burst": (("service", "rate", "duration"), ()),
    "schema_version": (("change", "share"), ()),
}
#: Services of the traced flow (sim/tracing.py) a latency_spike or error_burst may name.
TRACED_SERVICES = SERVICES
#: (action, key) -> (test, what is allowed), where a key means something else for that action.
_ACTION_CHECKS: dict[tuple[str, str], tuple[Any, str]] = {
    (action, "service"): (lambda v: v in TRACED_SERVICES,
                          f"must be a traced service: {', '.join(TRACED_SERVICES)}")
    for action in ("latency_spike", "error_burst")
}
BREAK_HOWS = ("missing-role", "no-permissions")


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``lines`` holds one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class ScenarioEvent:
    """One validated entry. ``params`` holds the action's keys (bus defaulted)."""

    index: int
    at: timedelta
    action: str
    params: dict[str, Any]

    def describe(self) -> str:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"events[{self.index}] at +{int(self.at.total_seconds())}s {self.action} ({detail})"


def _span(text: Any, regex: re.Pattern[str]) -> timedelta | None:
    match = regex.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: key -> (test, what is allowed)
_CHECKS: dict[str, tuple[Any, str]] = {
    "account": (lambda v: isinstance(v, str) and bool(_ACCOUNT_RE.match(v)),
                "must be a 12-digit account id, quoted"),
    "principal": (lambda v: isinstance(v, str) and bool(_ACCOUNT_RE.match(v)),
                  "must be a 12-digit account id, quoted"),
    "rule": (lambda v: isinstance(v, str) and bool(v), "must be a non-empty string"),
    "bus": (lambda v: isinstance(v, str) and bool(v), "must be a non-empty string"),
    "rate": (lambda v: _is_number(v) and 0 < v <= 1, "must be a number in (0, 1], e.g. 0.3"),
    "ms": (lambda v: _is_number(v) and v > 0, "must be a positive number of milliseconds"),
    "duration": (lambda v: _span(v, _DURATION_RE) is not None,
                 "must be like '90s', '15m' or '1h'"),
    "how": (lambda v: v in BREAK_HOWS, f"must be one of {', '.join(BREAK_HOWS)}"),
    "service": (lambda v: isinstance(v, str) and bool(v),
                "must be a Cost Explorer SERVICE name, e.g. 'EC2 - Other'"),
    "usage_type": (lambda v: isinstance(v, str) and bool(v),
                   "must be a Cost Explorer USAGE_TYPE, e.g. 'NatGateway-Bytes'"),
    "factor": (lambda v: _is_number(v) and v > 0, "must be a positive number, e.g. 6"),
    "days": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 366,
             "must be a whole number of days, 1-366"),
    "change": (lambda v: v in SCHEMA_CHANGES,
               f"must be a schema change of sim/topology.py: {', '.join(SCHEMA_CHANGES)}"),
    "share": (lambda v: _is_number(v) and 0 < v <= 1,
              "must be the share of the producer's events in (0, 1], e.g. 0.1"),
}


def _entry_problems(where: str, action: str, entry: dict[str, Any]) -> list[str]:
    """Problems of one entry whose action is known."""
    problems = []
    required, optional = ACTIONS[action]
    if _span(entry.get("at"), _AT_RE) is None:
        problems.append(f"{where}: at = {entry.get('at')!r} must be like '+30s', '+10m' "
                        "or '+1h' (time after the simulator starts)")
    allowed = ("at", "action", *required, *optional)
    for key in sorted(set(entry) - set(allowed)):
        problems.append(f"{where}: unknown key {key!r} (allowed for {action}: "
                        f"{', '.join(allowed)})")
    for key in required:
        if key not in entry:
            problems.append(f"{where}: required key {key!r} is missing "
                            f"(required for {action}: {', '.join(required)})")
    for key in (*required, *optional):
        test, allowed_text = _ACTION_CHECKS.get((action, key), _CHECKS[key])
        if key in entry and not test(entry[key]):
            problems.append(f"{where}: {key} = {entry[key]!r} {allowed_text}")
    return problems


def _event(index: int, action: str, entry: dict[str, Any]) -> ScenarioEvent:
    required, optional = ACTIONS[action]
    params = {k: entry[k] for k in (*required, *optional) if k in entry}
    if "bus" in optional:
        params.setdefault("bus", "default")
    if action == "break_account":
        params.setdefault("how", "missing-role")
    at = _span(entry["at"], _AT_RE)
    assert at is not None
    return ScenarioEvent(index, at, action, params)


def parse_events(data: dict[str, Any], source: str) -> list[ScenarioEvent]:
    """Validate a parsed scenario document -> entries sorted by time."""
    problems: list[str] = []
    unknown = sorted(set(data) - {"events", "description"})
    if unknown:
        problems.append(f"{source}: unknown top-level key(s) {', '.join(unknown)} "
                        "(allowed: description, events)")
    entries = data.get("events", [])
    if not isinstance(entries, list):
        raise ScenarioError([f"{source}: 'events' must be a list of [[events]] tables"])
    events: list[ScenarioEvent] = []
    for index, entry in enumerate(entries):
        where = f"{source}: events[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        action = entry.get("action")
        if action not in ACTIONS:
            problems.append(f"{where}: action = {action!r} is not allowed "
                            f"(allowed: {', '.join(ACTIONS)})")
            continue
        found = _entry_problems(f"{where} ({action})", action, entry)
        if found:
            problems.extend(found)
        else:
            events.append(_event(index, action, entry))
    if problems:
        raise ScenarioError(problems)
    return sorted(events, key=lambda e: (e.at, e.index))


def load_scenario(path: str | Path) -> list[ScenarioEvent]:
    """Read and validate a scenario file; :class:`ScenarioError` for every user mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError([f"{path}: cannot be read ({error.strerror})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError([f"{path}: not valid TOML: {error}"]) from None
    return parse_events(data, str(path))


def duration_of(event: ScenarioEvent) -> timedelta:
    span = _span(event.params.get("duration", "0s"), _DURATION_RE)
    return span or timedelta(0)
