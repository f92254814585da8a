"""Faults that are AWS state changes, made through the ordinary APIs with admin sessions.

What a careless deploy or console click would do: disable a rule, break its pattern, remove
a bus permission. (Target errors, throttling and latency are not AWS state: the traffic model
applies them, see :class:`sim.traffic.Faults`.)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sim.admin import AdminSessions

log = logging.getLogger(__name__)


def set_rule_state(admin: AdminSessions, account: str, bus: str, rule: str, enabled: bool
                   ) -> None:
    events = admin.client(account, "events")
    if enabled:
        events.enable_rule(Name=rule, EventBusName=bus)
    else:
        events.disable_rule(Name=rule, EventBusName=bus)
    log.info("rule %s on %s in %s %s", rule, bus, account, "enabled" if enabled else "disabled")


def broken_pattern(pattern: dict[str, Any]) -> dict[str, Any]:
    """The pattern with a realistic typo: spaces dropped from detail-type values ("Order
    Placed" -> "OrderPlaced"), or, when there are none, '.' -> '-' in source values."""
    broken = dict(pattern)
    types = [str(t) for t in broken.get("detail-type", []) if isinstance(t, str)]
    if any(" " in t for t in types):
        broken["detail-type"] = [t.replace(" ", "") for t in types]
    else:
        sources = [str(s) for s in broken.get("source", []) if isinstance(s, str)]
        broken["source"] = [s.replace(".", "-") + "-typo" for s in sources] or ["typo"]
    return broken


def break_pattern(admin: AdminSessions, account: str, bus: str, rule: str) -> None:
    """PutRule with a pattern that no event matches any more; state and targets stay."""
    events = admin.client(account, "events")
    current = events.describe_rule(Name=rule, EventBusName=bus)
    pattern = broken_pattern(json.loads(current.get("EventPattern") or "{}"))
    params: dict[str, Any] = {"Name": rule, "EventBusName": bus,
                              "EventPattern": json.dumps(pattern),
                              "State": current.get("State", "ENABLED")}
    if current.get("Description"):
        params["Description"] = current["Description"]
    events.put_rule(**params)
    log.info("rule %s on %s in %s: pattern broken to %s", rule, bus, account, pattern)


def remove_bus_permission(admin: AdminSessions, account: str, bus: str, principal: str) -> int:
    """Remove every bus-policy statement naming ``principal``; returns how many."""
    events = admin.client(account, "events")
    policy = events.describe_event_bus(Name=bus).get("Policy")
    statements = json.loads(policy).get("Statement", []) if policy else []
    removed = 0
    for statement in statements:
        aws = (statement.get("Principal") or {})
        values = aws.get("AWS", []) if isinstance(aws, dict) else []
        values = [values] if isinstance(values, str) else values
        if any(principal in str(v) for v in values) and statement.get("Sid"):
            events.remove_permission(StatementId=statement["Sid"], EventBusName=bus)
            removed += 1
    log.info("bus %s in %s: removed %d statement(s) for %s", bus, account, removed, principal)
    return removed
