"""The world as the endpoint says it is now: buses, their policies, rules and targets.

Read every tick through the admin sessions with the ordinary EventBridge read APIs, so any
change made through the API (a rule disabled, a pattern edited, a permission removed) shows up
in the next tick's traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sim.admin import AdminSessions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    id: str
    arn: str
    dlq_arn: str | None
    retry_attempts: int


@dataclass(frozen=True)
class Rule:
    account: str
    bus: str
    name: str
    state: str
    pattern: str | None
    targets: tuple[Target, ...]

    def arn(self, region: str) -> str:
        path = self.name if self.bus == "default" else f"{self.bus}/{self.name}"
        return f"arn:aws:events:{region}:{self.account}:rule/{path}"


@dataclass(frozen=True)
class Bus:
    account: str
    name: str
    policy: str | None
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class World:
    """Every bus of the watched accounts, keyed by (account, bus name)."""

    buses: dict[tuple[str, str], Bus] = field(default_factory=dict)

    def bus(self, account: str, name: str) -> Bus | None:
        return self.buses.get((account, name))


def target_from(entry: dict[str, Any]) -> Target:
    retry = entry.get("RetryPolicy") or {}
    return Target(
        id=str(entry.get("Id", "")),
        arn=str(entry.get("Arn", "")),
        dlq_arn=(entry.get("DeadLetterConfig") or {}).get("Arn"),
        retry_attempts=int(retry.get("MaximumRetryAttempts", 185)),
    )


def _pages(call: Any, key: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = call(**params)
        found.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return found
        params["NextToken"] = token


def read_account(admin: AdminSessions, account: str) -> list[Bus]:
    """ListEventBuses, ListRules and ListTargetsByRule in one account."""
    events = admin.client(account, "events")
    buses = []
    for entry in _pages(events.list_event_buses, "EventBuses"):
        name = entry["Name"]
        rules = []
        for rule in _pages(events.list_rules, "Rules", EventBusName=name):
            targets = _pages(events.list_targets_by_rule, "Targets", Rule=rule["Name"],
                             EventBusName=name)
            rules.append(Rule(account, name, rule["Name"], rule.get("State", "ENABLED"),
                              rule.get("EventPattern"),
                              tuple(target_from(t) for t in targets)))
        buses.append(Bus(account, name, entry.get("Policy"), tuple(rules)))
    return buses


def read_world(admin: AdminSessions, accounts: Iterable[str], workers: int = 4) -> World:
    accounts = list(accounts)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda a: read_account(admin, a), accounts))
    return World({(bus.account, bus.name): bus for buses in results for bus in buses})
