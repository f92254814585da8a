"""EventBridge inventory: every bus, its resource policy, and every rule with targets and tags.

AWS APIs wrapped (all read-only, in the account's own region):
``events:ListEventBuses``, ``events:DescribeEventBus`` (bus policy), ``events:ListRules``,
``events:ListTargetsByRule``, ``events:ListTagsForResource``; for a change event
(:func:`reread_collector`, docs/changes.md) ``events:DescribeRule`` and the last two for the
one rule it names, or ``events:DescribeEventBus`` for the bus.

Datasets returned:

* ``rules``: account_id, region, bus, rule, arn, state, description, event_pattern (JSON text),
  schedule_expression, managed_by, targets (JSON list of {id, arn, role_arn, dlq_arn,
  retry_policy}), target_count, dlq_arns (list), tags (JSON object), collected_at.
* ``event_buses``: account_id, region, bus, arn, policy (JSON text), allowed_principals (list of
  account ids or ARNs the policy allows to PutEvents), rule_count, collected_at.

A rule whose record cannot be understood (for example an event pattern that is not JSON) is
logged and skipped; the rest of the inventory is still returned.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from orgscope.changes import RuleChange
from orgscope.collect import CollectContext, Collector, Frames, pages
from orgscope.config import CollectorConfig, Interval
from orgscope.datasets import EVENT_BUSES, RULES

log = logging.getLogger(__name__)


# --- pure helpers ----------------------------------------------------------------------------


def target_record(target: dict[str, Any]) -> dict[str, Any]:
    """One ListTargetsByRule entry -> the fields orgscope keeps."""
    return {
        "id": target.get("Id"),
        "arn": target.get("Arn"),
        "role_arn": target.get("RoleArn"),
        "dlq_arn": (target.get("DeadLetterConfig") or {}).get("Arn"),
        "retry_policy": target.get("RetryPolicy"),
    }


def policy_principals(policy_text: str | None) -> list[str]:
    """Principals a bus policy allows to call events:PutEvents (account ids or ARNs).

    Handles ``Principal: "*"`` with an ``aws:PrincipalOrgID`` condition (returned as
    ``org:<id>``), ``{"AWS": "<id or arn>"}`` and lists of either.
    """
    if not policy_text:
        return []
    document = json.loads(policy_text)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    found: list[str] = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("events:PutEvents", "events:*", "*") for a in actions):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            org = (
                statement.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalOrgID")
            )
            found.append(f"org:{org}" if org else "*")
            continue
        values = principal.get("AWS", []) if isinstance(principal, dict) else []
        values = [values] if isinstance(values, str) else values
        for value in values:
            found.append(_account_of(value))
    return sorted(set(found))


def _account_of(principal: str) -> str:
    """'arn:aws:iam::111111111111:root' -> '111111111111'; an account id stays as it is."""
    parts = principal.split(":")
    if len(parts) >= 5 and parts[0] == "arn" and parts[4].isdigit():
        return parts[4] if parts[-1] == "root" else principal
    return principal


def rule_record(
    ctx: CollectContext,
    bus: str,
    rule: dict[str, Any],
    targets: list[dict[str, Any]],
    tags: dict[str, str],
) -> dict[str, Any]:
    """One ListRules entry plus its targets and tags -> one ``rules`` row.

    Raises ValueError when the event pattern is not JSON (the caller logs and skips).
    """
    pattern = rule.get("EventPattern")
    if pattern:
        json.loads(pattern)  # validate: a broken record is skipped, not stored
    kept = [target_record(t) for t in targets]
    return {
        "account_id": ctx.account.id,
        "region": ctx.region,
        "bus": bus,
        "rule": rule["Name"],
        "arn": rule.get("Arn"),
        "state": rule.get("State", "UNKNOWN"),
        "description": rule.get("Description"),
        "event_pattern": pattern,
        "schedule_expression": rule.get("ScheduleExpression"),
        "managed_by": rule.get("ManagedBy"),
        "targets": json.dumps(kept, sort_keys=True),
        "target_count": len(kept),
        "dlq_arns": sorted({t["dlq_arn"] for t in kept if t["dlq_arn"]}),
        "tags": json.dumps(tags, sort_keys=True),
        "collected_at": ctx.collected_at,
    }


# --- AWS edges -------------------------------------------------------------------------------


def _event_buses(events: Any) -> Iterator[dict[str, Any]]:
    """ListEventBuses has no boto3 paginator: follow NextToken by hand."""
    for page in pages(events.list_event_buses, {}):
        yield from page.get("EventBuses", [])


def _paginate(events: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in events.get_paginator(operation).paginate(**params):
        yield from page.get(key, [])


def _tags(events: Any, arn: str | None) -> dict[str, str]:
    if not arn:
        return {}
    response = events.list_tags_for_resource(ResourceARN=arn)
    return {tag["Key"]: tag["Value"] for tag in response.get("Tags", [])}


def _principals(ctx: CollectContext, bus: str, policy: Any) -> list[str]:
    """Who ``bus``'s policy lets put events (:func:`policy_principals`); none, logged, when
    the policy is not valid JSON (the policy itself is kept as text)."""
    try:
        return policy_principals(policy)
    except (ValueError, AttributeError) as error:
        log.warning(
            "inventory %s %s: bus %s has a policy that is not valid JSON, kept as text: %s",
            ctx.account.id, ctx.region, bus, error,
        )
        return []


def collect_inventory(ctx: CollectContext) -> Frames:
    """Buses, bus policies, rules, targets and tags of one account and region."""
    events = ctx.client("events")
    bus_rows: list[dict[str, Any]] = []
    rule_rows: list[dict[str, Any]] = []
    for bus in _event_buses(events):
        name = bus.get("Name")
        if not isinstance(name, str):
            log.warning("inventory %s %s: skipped a bus without a name (ARN %s)",
                        ctx.account.id, ctx.region, bus.get("Arn"))
            continue
        policy = bus.get("Policy")
        if policy is None:
            policy = events.describe_event_bus(Name=name).get("Policy")
        principals = _principals(ctx, name, policy)
        rules = list(_paginate(events, "list_rules", "Rules", EventBusName=name))
        bus_rows.append(
            {
                "account_id": ctx.account.id,
                "region": ctx.region,
                "bus": name,
                "arn": bus.get("Arn"),
                "policy": policy,
                "allowed_principals": principals,
                "rule_count": len(rules),
                "collected_at": ctx.collected_at,
            }
        )
        for rule in rules:
            if not isinstance(rule.get("Name"), str):
                log.warning("inventory %s %s: skipped a rule without a name on bus %s (ARN %s)",
                            ctx.account.id, ctx.region, name, rule.get("Arn"))
                continue
            targets = list(
                _paginate(events, "list_targets_by_rule", "Targets", Rule=rule["Name"],
                          EventBusName=name)
            )
            tags = _tags(events, rule.get("Arn"))
            try:
                rule_rows.append(rule_record(ctx, name, rule, targets, tags))
            except (ValueError, KeyError) as error:
                log.warning(
                    "inventory %s %s: skipped rule %s on bus %s, bad record: %s",
                    ctx.account.id, ctx.region, rule.get("Name"), name, error,
                )
    return {
        RULES.name: pd.DataFrame(rule_rows, columns=RULES.columns),
        EVENT_BUSES.name: pd.DataFrame(bus_rows, columns=EVENT_BUSES.columns),
    }


# --- one rule or bus again, for a change event ----------------------------------------------


def _not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == "ResourceNotFoundException"


def _reread_rule(ctx: CollectContext, events: Any, bus: str, rule: str
                 ) -> dict[str, Any] | None:
    """One rule's ``rules`` row read again (DescribeRule, ListTargetsByRule,
    ListTagsForResource); None when the rule (or its bus) no longer exists."""
    try:
        described = events.describe_rule(Name=rule, EventBusName=bus)
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    targets = list(_paginate(events, "list_targets_by_rule", "Targets", Rule=rule,
                             EventBusName=bus))
    return rule_record(ctx, bus, described, targets, _tags(events, described.get("Arn")))


def _reread_bus(ctx: CollectContext, events: Any, bus: str) -> dict[str, Any] | None:
    """A bus's ARN and policy read again (DescribeEventBus); None when it no longer exists."""
    try:
        described = events.describe_event_bus(Name=bus)
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    policy = described.get("Policy")
    return {"arn": described.get("Arn"), "policy": policy,
            "allowed_principals": _principals(ctx, bus, policy)}


def _rows_here(ctx: CollectContext, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` for this run's account and region, as dicts."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")
            if row["account_id"] == ctx.account.id and row["region"] == ctx.region]


def reread_changes(ctx: CollectContext, changes: Sequence[RuleChange]) -> Frames:
    """The latest inventory snapshot of this account and region (``ctx.input("rules")`` and
    ``"event_buses"``) with what ``changes`` name read again, as a new snapshot taken at
    ``ctx.collected_at``: a changed rule re-read (dropped when deleted), a bus whose policy
    changed re-read, a deleted bus dropped with its rules. Nothing else is listed again: the
    full inventory stays the reconciliation. A rule the event names but whose record cannot be
    understood keeps its previous row (logged)."""
    events = ctx.client("events")
    rules = _rows_here(ctx, ctx.input(RULES.name))
    buses = _rows_here(ctx, ctx.input(EVENT_BUSES.name))
    for change in changes:
        if change.rule is not None:
            try:
                row = _reread_rule(ctx, events, change.bus, change.rule)
            except (ValueError, KeyError) as error:
                log.warning("change %s %s: kept rule %s on bus %s as it was, bad record: %s",
                            ctx.account.id, ctx.region, change.rule, change.bus, error)
                continue
            rules = [r for r in rules if (r["bus"], r["rule"]) != (change.bus, change.rule)]
            rules.extend([row] if row is not None else [])
            continue
        if change.event_name in ("TagResource", "UntagResource"):
            continue  # a bus's tags are not kept
        bus_row = _reread_bus(ctx, events, change.bus)
        if bus_row is None:
            buses = [b for b in buses if b["bus"] != change.bus]
            rules = [r for r in rules if r["bus"] != change.bus]
        else:
            buses = [{**b, **bus_row} if b["bus"] == change.bus else b for b in buses]
    counts = pd.Series([r["bus"] for r in rules], dtype=object).value_counts().to_dict()
    for bus in buses:
        bus["rule_count"] = int(counts.get(bus["bus"], 0))
    return {
        RULES.name: pd.DataFrame([{**r, "collected_at": ctx.collected_at} for r in rules],
                                 columns=RULES.columns),
        EVENT_BUSES.name: pd.DataFrame([{**b, "collected_at": ctx.collected_at} for b in buses],
                                       columns=EVENT_BUSES.columns),
    }


#: A name no real rule has: a probe that needs a rule gets "not found", which proves the action.
PROBE_RULE = "orgscope-access-probe"

INVENTORY_PROBES = (
    ("events:ListEventBuses", lambda ctx: ctx.client("events").list_event_buses(Limit=1)),
    ("events:DescribeEventBus",
     lambda ctx: ctx.client("events").describe_event_bus(Name="default")),
    ("events:ListRules", lambda ctx: ctx.client("events").list_rules(Limit=1)),
    ("events:DescribeRule",
     lambda ctx: ctx.client("events").describe_rule(Name=PROBE_RULE)),
    ("events:ListTargetsByRule",
     lambda ctx: ctx.client("events").list_targets_by_rule(Rule=PROBE_RULE, Limit=1)),
    ("events:ListTagsForResource", lambda ctx: ctx.client("events").list_tags_for_resource(
        ResourceARN=f"arn:aws:events:{ctx.region}:{ctx.account.id}:rule/{PROBE_RULE}")),
)

class InventoryCollectorConfig(CollectorConfig):
    """The inventory: every ``interval``, or every ``reconcile_interval`` when a change feed
    tells orgscope about each change as it happens (docs/changes.md)."""

    reconcile_interval: Interval = timedelta(hours=1)

    def run_interval(self, change_feed: bool) -> timedelta:
        """``reconcile_interval`` with a change feed (never shorter than ``interval``), else
        ``interval``."""
        return max(self.interval, self.reconcile_interval) if change_feed else self.interval


INVENTORY = Collector(
    name="inventory",
    settings=InventoryCollectorConfig,
    feeds=("health", "heal"),
    fn=collect_inventory,
    datasets=(RULES, EVENT_BUSES),
    scope="regional",
    description="EventBridge buses, bus policies, rules, targets, DLQs and tags.",
    checks_reachability=True,
    iam_actions=(
        "events:ListEventBuses",
        "events:DescribeEventBus",
        "events:ListRules",
        "events:ListTargetsByRule",
        "events:ListTagsForResource",
        "events:DescribeRule",
    ),
    probes=INVENTORY_PROBES,
)


def reread_collector(changes: Sequence[RuleChange]) -> Collector:
    """The inventory collector for one account and region's change events: it writes the
    ``rules`` and ``event_buses`` snapshot :func:`reread_changes` patches, recorded as an
    inventory run (so the latest views follow it), from the latest snapshot as its input."""
    batch = tuple(changes)
    return dataclasses.replace(
        INVENTORY, fn=lambda ctx: reread_changes(ctx, batch),
        inputs=(RULES.name, EVENT_BUSES.name), probes=())
