"""Unit cost per event flow: cost lines allocated to flows by the events they delivered
(pure functions; docs/cost.md, "Unit cost per event flow").

A *flow* is one target of one rule: producer accounts -> bus -> rule -> target (its account
and kind: an SQS queue, a Lambda function, a state machine, another account's bus, an API
destination). Its events delivered on a day are the rule's ``Invocations`` minus
``FailedInvocations`` (AWS/Events, per rule) split evenly over the rule's targets, since
CloudWatch counts one invocation per target and reports no per-target figure.

The cost lines a flow carries (how AWS charges, docs/cost.md):

* **EventBridge** (service ``CloudWatch Events`` / ``Amazon EventBridge``): custom events
  (usage types ``Event*``) are charged to the account that sends them: a producer's
  PutEvents, and a rule's account when it forwards to another account's bus. An account's
  line is split over the flows it publishes to directly (rules on its own bus, or on a bus
  whose policy admits it) and the flows it forwards cross-account, by events delivered.
  Cross-account invocations (usage types ``Invocation*``, AWS's ``CrossAccountInvoke``
  operations) go to the flows whose rule is in the account and whose target is not.
* **Targets**: an account's SQS, Lambda or Step Functions line is split over the flows
  delivering to targets of that kind in that account, by events delivered; an account's
  EventBridge ``ApiDestination*`` line over its rules' API-destination targets. Cost Explorer
  has no resource ids, so this is the whole account's line, including what the service does
  for other callers: the method says so. A resource-level source (CUR/FOCUS) would write
  these rows with :data:`METHOD_RESOURCE` instead.

**Usage pricing.** A line whose usage counts one unit per event delivered (EventBridge
``Event*``, ``Invocation*`` and ``ApiDestination*``; SQS ``Requests*``: one SendMessage per
event; Lambda ``Request*``: one invocation per event) and that has a positive usage quantity
(Cost Explorer's UsageQuantity) charges each flow its units at the line's own unit price
(amount / quantity): a producer's ``Event*`` line counts a flow's events over the flow's
producers (CloudWatch does not say which producer sent them) plus all of them when the
account forwards them to another bus. What the flows did not use stays one row of its own,
:data:`METHOD_UNUSED`. Should the flows' units exceed the quantity (inventory and metrics
disagree with the bill), or the line have no quantity (older data) or not count per event
(Lambda GB-seconds, Step Functions state transitions), the whole line is shared by events as
above.

Conservation: every allocated line is split in integer millionths of a dollar with the
largest-remainder rule, so a line's rows add up to it exactly; a line with no events to
split it by that day (or no flow at all) is one row of its own, :data:`UNALLOCATED`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from orgscope.cost.attribution import month_of
from orgscope.cost.categories import overhead_category, usage_kind
from orgscope.cost.review import this_and_previous
from orgscope.health.producers import source_producers, tuples
from orgscope.jsontext import parsed_object
from orgscope.patterns import pattern_sources
from orgscope.targets import arn_account, rule_targets

log = logging.getLogger(__name__)

MICROS = 1_000_000
PER_EVENTS = 1_000_000  # unit cost: $ per million events delivered

#: The key of a flow, in every frame of this module.
FLOW_KEY = ["account_id", "region", "bus", "rule", "target_arn"]
#: What the unit-cost tables keep of a flow besides its key.
FLOW_ATTRS = ["team", "target_account_id", "target_kind"]

#: Columns of an allocation (``flow_cost_daily`` without ``computed_at``), in order.
COLUMNS = ["date", "month", "account_id", "region", "bus", "rule", "target_arn",
           "target_account_id", "target_kind", "producers", "team", "component",
           "cost_account_id", "service", "usage_type", "method", "amount", "currency",
           "events", "retries", "failed"]

COMPONENT_EVENTBRIDGE = "eventbridge"
COMPONENT_TARGET = "target"
COMPONENT_NONE = "none"

METHOD_EVENTBRIDGE = "by events: sender's EventBridge line over the flows it sends"
METHOD_TARGET = "by events: target account's whole service line (no resource ids)"
METHOD_EVENTBRIDGE_USAGE = "by usage: the flow's events x the sender's price per event"
METHOD_TARGET_USAGE = "by usage: the flow's requests x the target account's price per request"
METHOD_EVENTBRIDGE_OVER = ("by events: flows' events exceed the line's usage, sender's "
                           "EventBridge line over the flows it sends")
METHOD_TARGET_OVER = ("by events: flows' requests exceed the line's usage, target account's "
                      "whole service line")
METHOD_UNUSED = "unallocated: usage beyond the inventory's flows"
METHOD_RESOURCE = "resource"
METHOD_NO_EVENTS = "unallocated: no events delivered that day"
METHOD_NO_FLOW = "unallocated: no flow in the inventory"
METHOD_NO_COST = "no cost line to allocate"

#: The team of an unallocated line.
UNALLOCATED = "(unallocated)"

#: ARN service -> (target kind, Cost Explorer SERVICE of its line).
TARGET_SERVICES: dict[str, tuple[str, str]] = {
    "sqs": ("sqs", "Amazon Simple Queue Service"),
    "lambda": ("lambda", "AWS Lambda"),
    "states": ("stepfunctions", "AWS Step Functions"),
}
EVENTBRIDGE_SERVICES = ("CloudWatch Events", "Amazon EventBridge")
#: Target kind -> the usage types (without region prefix) counting one unit per event
#: delivered: one SendMessage, one invocation. Step Functions bills state transitions, many
#: per execution: its lines keep the share method.
PER_EVENT_USAGE: dict[str, tuple[str, ...]] = {"sqs": ("Requests",), "lambda": ("Request",)}
#: A target's requests per event delivered (one SendMessage, one Invoke; events are under
#: 64 KB, so one request each).
REQUESTS_PER_EVENT = 1.0

_EDGE_COLUMNS = [*FLOW_KEY, "target_account_id", "target_kind", "producers", "team"]
_DAY_COLUMNS = ["date", "account_id", "region", "bus", "rule", "delivered", "retries",
                "failed"]


def target_kind(arn: str) -> str:
    """What a target ARN names: sqs, lambda, stepfunctions, bus, api-destination or other."""
    parts = arn.split(":")
    service = parts[2] if len(parts) > 2 else ""
    if service in TARGET_SERVICES:
        return TARGET_SERVICES[service][0]
    if service == "events":
        resource = parts[5] if len(parts) > 5 else ""
        if resource.startswith("event-bus/"):
            return "bus"
        if resource.startswith("api-destination/"):
            return "api-destination"
    return "other"


def _admits(principals: Any, producer: str) -> bool:
    """Whether a bus's ``allowed_principals`` (a list cell; null for no policy) let
    ``producer`` publish: its id, an ARN in its account, everyone or an organization."""
    if isinstance(principals, str):
        values = [principals]
    elif principals is None or isinstance(principals, float):
        values = []
    else:
        values = [str(p) for p in principals]
    return any(text == "*" or text.startswith("org:") or text == producer
               or (text.startswith("arn:") and arn_account(text) == producer)
               for text in values)


def flow_edges(rules: pd.DataFrame, buses: pd.DataFrame, accounts: pd.DataFrame,
               teams: Mapping[tuple[str, str, str, str], str],
               account_teams: Mapping[str, str]) -> pd.DataFrame:
    """The flows of the latest inventory: one row per (rule, target) with FLOW_KEY,
    target_account_id, target_kind, producers (sorted account ids publishing to the rule's
    bus directly) and team (the rule's own team tag in ``teams``, else its account's team).

    ``rules``: the ``rules`` dataset (account_id, region, bus, rule, event_pattern, targets);
    ``buses``: the latest ``event_buses`` (account_id, region, bus, allowed_principals): a
    producer publishes to a rule directly when the bus is its own or admits it (without bus
    data, every producer its sources name); ``accounts``: ``accounts`` (account_id, name,
    team) to map sources to producers (:func:`orgscope.health.producers.source_producers`).
    A rule without targets, or without an event pattern (a scheduled rule), has no flow.
    """
    policies: dict[tuple[str, str, str], object] = {}
    if not buses.empty:
        for row in tuples(buses[["account_id", "region", "bus", "allowed_principals"]]):
            policies[(str(row.account_id), str(row.region), str(row.bus))] = \
                row.allowed_principals
    producers_of: dict[str, list[str]] = {}
    rows = []
    for row in tuples(rules[["account_id", "region", "bus", "rule", "event_pattern",
                             "targets"]]):
        if not isinstance(row.event_pattern, str) or not row.event_pattern:
            continue  # a scheduled rule: no producer, no event flow
        account_id, region, bus = str(row.account_id), str(row.region), str(row.bus)
        for source in pattern_sources(row.event_pattern):
            if source not in producers_of:
                producers_of[source] = source_producers(source, accounts)
        named = sorted({p for source in pattern_sources(row.event_pattern)
                        for p in producers_of[source]})
        bus_key = (account_id, region, bus)
        direct = [p for p in named if p == account_id or bus_key not in policies
                  or _admits(policies[bus_key], p)]
        team = teams.get((account_id, region, bus, str(row.rule)),
                         account_teams.get(account_id, ""))
        for target in rule_targets(row.targets):
            arn = str(target["arn"])
            rows.append((account_id, region, bus, str(row.rule), arn,
                         arn_account(arn) or account_id, target_kind(arn), tuple(direct), team))
    return pd.DataFrame(rows, columns=_EDGE_COLUMNS)


def rule_days(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per rule and day from daily sums of ``event_metrics`` (date, account_id, region, bus,
    rule, metric, value): delivered (Invocations - FailedInvocations, never below 0),
    retries (RetryInvocationAttempts) and failed (FailedInvocations). Metrics absent on a day
    (AWS omits zeros) count 0; account-level rows (no rule) are ignored."""
    if metrics.empty:
        return pd.DataFrame(columns=_DAY_COLUMNS)
    frame = metrics[metrics["rule"].notna() & metrics["metric"].isin(
        ["Invocations", "FailedInvocations", "RetryInvocationAttempts"])].copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    wide = frame.pivot_table(index=["date", "account_id", "region", "bus", "rule"],
                             columns="metric", values="value", aggfunc="sum", fill_value=0.0)
    for metric in ("Invocations", "FailedInvocations", "RetryInvocationAttempts"):
        if metric not in wide:
            wide[metric] = 0.0
    wide = wide.reset_index()
    wide["delivered"] = (wide["Invocations"] - wide["FailedInvocations"]).clip(lower=0.0)
    wide["retries"] = wide["RetryInvocationAttempts"]
    wide["failed"] = wide["FailedInvocations"]
    return wide[_DAY_COLUMNS].reset_index(drop=True)


def flow_days(edges: pd.DataFrame, days: pd.DataFrame) -> pd.DataFrame:
    """Each flow's events on each day it has metrics: the rule's delivered, retries and
    failed split evenly over its targets (columns of ``edges`` plus date, events, retries,
    failed)."""
    columns = [*_EDGE_COLUMNS, "date", "events", "retries", "failed"]
    if edges.empty or days.empty:
        return pd.DataFrame(columns=columns)
    per_rule = edges.groupby(["account_id", "region", "bus", "rule"]).size().rename("n")
    merged = edges.merge(per_rule.reset_index(), on=["account_id", "region", "bus", "rule"])
    merged = merged.merge(days, on=["account_id", "region", "bus", "rule"])
    merged["events"] = merged["delivered"] / merged["n"]
    merged["retries"] = merged["retries"] / merged["n"]
    merged["failed"] = merged["failed"] / merged["n"]
    return merged[columns].reset_index(drop=True)


def split_micros(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` (integer millionths, any sign) split in proportion to ``weights`` (>= 0,
    some > 0) by the largest-remainder rule: the parts add up to ``total`` exactly, and a
    zero weight gets zero. The shares are floats; should rounding push the floors' sum past
    the total, the parts with the smallest remainders give the excess back."""
    whole = math.fsum(weights)
    if whole <= 0:
        raise ValueError("split_micros needs a positive weight")
    size = abs(total)
    exact = [size * w / whole for w in weights]
    parts = [math.floor(x) for x in exact]
    left = size - sum(parts)
    positive = [i for i, w in enumerate(weights) if w > 0]
    if left >= 0:
        order = sorted(positive, key=lambda i: (parts[i] - exact[i], i))
        for k in range(left):
            parts[order[k % len(order)]] += 1
    else:
        order = sorted((i for i in positive if parts[i] > 0),
                       key=lambda i: (exact[i] - parts[i], i))
        for k in range(-left):
            parts[order[k % len(order)]] -= 1
    sign = -1 if total < 0 else 1
    return [sign * p for p in parts]


def cost_lines(cost: pd.DataFrame) -> pd.DataFrame:
    """``cost_daily`` rows (date, account_id, service, usage_type, amount, currency and, when
    present, usage_quantity; the tag ignored) summed per line and day: micros (integer
    millionths of a dollar) and quantity (NaN when any of the line's rows has none)."""
    columns = ["date", "account_id", "service", "usage_type", "currency", "micros", "quantity"]
    if cost.empty:
        return pd.DataFrame(columns=columns)
    quantity = pd.to_numeric(cost["usage_quantity"], errors="coerce").astype(float) \
        if "usage_quantity" in cost else pd.Series(float("nan"), index=cost.index)
    frame = cost.assign(date=pd.to_datetime(cost["date"]).dt.date,
                        micros=(cost["amount"].astype(float) * MICROS).round().astype("int64"),
                        quantity=quantity, unknown=quantity.isna())
    lines = frame.groupby(["date", "account_id", "service", "usage_type", "currency"],
                          as_index=False).agg(micros=("micros", "sum"),
                                              quantity=("quantity", "sum"),
                                              unknown=("unknown", "any"))
    lines["quantity"] = lines["quantity"].where(~lines["unknown"], float("nan"))
    return lines[columns]


def _line_role(service: str, usage_type: str) -> tuple[str, str] | None:
    """(component, target kind or "sender") of a flow line; None for any other line."""
    kind = usage_kind(usage_type)
    if service in EVENTBRIDGE_SERVICES and kind.startswith("ApiDestination"):
        return COMPONENT_TARGET, "api-destination"
    if service in EVENTBRIDGE_SERVICES and kind.startswith("Invocation"):
        return COMPONENT_EVENTBRIDGE, "cross-account"
    if overhead_category(service, usage_type) == "EventBridge events":
        return COMPONENT_EVENTBRIDGE, "sender"
    for target, line_service in TARGET_SERVICES.values():
        if service == line_service:
            return COMPONENT_TARGET, target
    return None


def per_event(role: str, usage_type: str) -> bool:
    """Whether a flow line of ``role`` (:func:`_line_role`'s second part) counts one unit of
    usage per event delivered: every EventBridge line, and SQS requests and Lambda requests
    (:data:`PER_EVENT_USAGE`)."""
    if role in ("sender", "cross-account", "api-destination"):
        return True
    kind = usage_kind(usage_type)
    return any(kind.startswith(prefix) for prefix in PER_EVENT_USAGE.get(role, ()))


def units_per_event(flow: Mapping[str, Any], account_id: str, role: str) -> float:
    """How many units of ``account_id``'s line of ``role`` one event of ``flow`` uses: for
    a sender, its share of the flow's producers (the events are split evenly over them, as
    CloudWatch does not say who sent which) plus one when it forwards the flow to another
    account's bus; for a target, :data:`REQUESTS_PER_EVENT`; one otherwise."""
    if role == "sender":
        producers = list(flow["producers"])
        units = 1 / len(producers) if account_id in producers else 0.0
        if flow["account_id"] == account_id and flow["target_kind"] == "bus" and \
                flow["target_account_id"] != account_id:
            units += 1.0
        return units
    if role in PER_EVENT_USAGE:
        return REQUESTS_PER_EVENT
    return 1.0


def _carriers(frame: pd.DataFrame, account_id: str, role: str) -> pd.Series:
    """Which rows of ``frame`` (flows) carry ``account_id``'s line of ``role``: for
    "sender", the flows it publishes to directly or forwards to another account's bus; for
    "cross-account", its rules' targets in other accounts; for "api-destination", its own
    rules' API destinations; otherwise its targets of that kind."""
    if frame.empty:
        return pd.Series([], dtype=bool, index=frame.index)
    if role == "cross-account":
        return (frame["account_id"] == account_id) & (frame["target_account_id"] != account_id)
    if role == "sender":
        publishes = frame["producers"].map(lambda ps: account_id in ps).astype(bool)
        forwards = (frame["account_id"] == account_id) & \
            (frame["target_account_id"] != account_id) & (frame["target_kind"] == "bus")
        return publishes | forwards
    owner = "account_id" if role == "api-destination" else "target_account_id"
    return (frame[owner] == account_id) & (frame["target_kind"] == role)


def allocate(lines: pd.DataFrame, edges: pd.DataFrame, days: pd.DataFrame) -> pd.DataFrame:
    """Every flow line of ``lines`` (:func:`cost_lines`) split over the flows that carry it
    (``edges``: :func:`flow_edges`; ``days``: :func:`flow_days`), by usage or by events
    delivered that day (:func:`_split_line`): :data:`COLUMNS`. EventBridge lines are always
    flow lines (a line no flow carries is one :data:`METHOD_NO_FLOW` row); a target
    service's line only in an account some flow delivers to. A flow with events on a day
    none of its lines cost anything keeps a zero row (:data:`METHOD_NO_COST`), so its
    events are never lost."""
    rows: list[dict[str, Any]] = []
    fields = [*_EDGE_COLUMNS, "events", "retries", "failed"]
    by_day: dict[Any, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for record in days.to_dict("records") if len(days) else []:
        flow = {c: record[c] for c in fields}
        flow["producers"] = list(flow["producers"])
        by_day.setdefault(record["date"], {})[tuple(record[c] for c in FLOW_KEY)] = flow
    carriers_of: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    carried: set[tuple[object, ...]] = set()
    for line in tuples(lines) if len(lines) else []:
        role = _line_role(str(line.service), str(line.usage_type))
        if role is None:
            continue
        component, kind = role
        key = (str(line.account_id), kind)
        if key not in carriers_of:
            mask = _carriers(edges, key[0], kind)
            carriers_of[key] = sorted({tuple(r) for r in edges.loc[mask, FLOW_KEY].itertuples(
                index=False)})
        structural = bool(carriers_of[key])
        if component == COMPONENT_TARGET and not structural:
            continue  # an account no flow delivers to: not a flow line
        day_flows = by_day.get(line.date, {})
        carriers = [(k, day_flows[k]) for k in carriers_of[key] if k in day_flows]
        base = {"date": line.date, "month": month_of(line.date),
                "cost_account_id": line.account_id, "service": line.service,
                "usage_type": line.usage_type, "currency": line.currency,
                "component": component}
        weights = [float(f["events"]) for _, f in carriers]
        if not weights or sum(weights) <= 0:
            rows.append({**base, **_unallocated(), "amount": int(line.micros) / MICROS,
                         "method": METHOD_NO_EVENTS if structural else METHOD_NO_FLOW})
            continue
        for flow_key, _ in carriers:
            carried.add((line.date, *flow_key))
        rows.extend({**base, **flow, "method": method, "amount": micros / MICROS}
                    if flow is not None else
                    {**base, **_unallocated(), "method": method, "amount": micros / MICROS}
                    for flow, method, micros in _split_line(line, component, kind, carriers))
    for day, flows_of_day in by_day.items():
        for flow_key, flow in flows_of_day.items():
            if (day, *flow_key) in carried or float(flow["events"]) <= 0:
                continue
            rows.append({"date": day, "month": month_of(day), **flow,
                         "component": COMPONENT_NONE, "cost_account_id": "", "service": "",
                         "usage_type": "", "method": METHOD_NO_COST, "amount": 0.0,
                         "currency": "USD"})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["date", "component", "cost_account_id", "service", "usage_type",
                              "account_id", "rule", "target_arn"],
                             kind="stable").reset_index(drop=True)


def _split_line(line: Any, component: str, role: str,
                carriers: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
                ) -> list[tuple[dict[str, Any] | None, str, int]]:
    """One line's parts: (flow, or None for the unused rest; method; micros), adding up to
    ``line.micros`` exactly. By usage when the line counts per event and has a positive
    quantity the flows do not exceed; otherwise shared by events (module docstring)."""
    eventbridge = component == COMPONENT_EVENTBRIDGE
    total = int(line.micros)
    events = [float(f["events"]) for _, f in carriers]
    value = getattr(line, "quantity", None)
    quantity = float(value) if value is not None else float("nan")
    method = METHOD_EVENTBRIDGE if eventbridge else METHOD_TARGET
    if per_event(role, str(line.usage_type)) and math.isfinite(quantity) and quantity > 0:
        units = [e * units_per_event(f, str(line.account_id), role)
                 for e, (_, f) in zip(events, carriers, strict=True)]
        used = math.fsum(units)
        if 0 < used <= quantity:
            allocated = round(total * used / quantity)
            parts: list[tuple[dict[str, Any] | None, str, int]] = [
                (flow, METHOD_EVENTBRIDGE_USAGE if eventbridge else METHOD_TARGET_USAGE, micros)
                for (_, flow), micros in zip(carriers, split_micros(allocated, units),
                                             strict=True)]
            if total != allocated:
                parts.append((None, METHOD_UNUSED, total - allocated))
            return parts
        if used > quantity:
            method = METHOD_EVENTBRIDGE_OVER if eventbridge else METHOD_TARGET_OVER
    return [(flow, method, micros) for (_, flow), micros in
            zip(carriers, split_micros(total, events), strict=True)]


def _unallocated() -> dict[str, object]:
    return {"account_id": "", "region": "", "bus": "", "rule": "", "target_arn": "",
            "target_account_id": "", "target_kind": "", "producers": [], "team": UNALLOCATED,
            "events": 0.0, "retries": 0.0, "failed": 0.0}


# --- unit cost -------------------------------------------------------------------------------


def _per_flow_day(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per flow and day: the amounts by component and the flow's events."""
    flows = frame[frame["rule"] != ""]
    if flows.empty:
        return pd.DataFrame(columns=[*FLOW_KEY, *FLOW_ATTRS, "date", "month",
                                     "events", "retries", "eventbridge", "target", "amount"])
    pivot = flows.assign(
        eventbridge=flows["amount"].where(flows["component"] == COMPONENT_EVENTBRIDGE, 0.0),
        target=flows["amount"].where(flows["component"] == COMPONENT_TARGET, 0.0))
    grouped: pd.DataFrame = pivot.groupby([*FLOW_KEY, *FLOW_ATTRS, "date", "month"],
                                          as_index=False).agg(
        events=("events", "max"), retries=("retries", "max"),
        eventbridge=("eventbridge", "sum"), target=("target", "sum"), amount=("amount", "sum"))
    return grouped


def unit_cost(amount: float, events: float) -> float:
    """$ per million events; NaN without events."""
    return amount / events * PER_EVENTS if events > 0 else float("nan")


def _with_unit(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(per_million=[unit_cost(a, e) for a, e in
                                     zip(frame["amount"], frame["events"], strict=True)])


def flow_totals(frame: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per flow (and ``by``, e.g. ``["month"]`` or ``["date"]``) from ``flow_cost_daily``
    rows: events, retries, eventbridge, target, amount and per_million ($ per million
    events delivered). Unallocated lines are left out: see :func:`unallocated`."""
    days = _per_flow_day(frame)
    keys = [*FLOW_KEY, *FLOW_ATTRS, *by]
    totals: pd.DataFrame = days.groupby(keys, as_index=False)[
        ["events", "retries", "eventbridge", "target", "amount"]].sum() if len(days) else \
        days.reindex(columns=[*keys, "events", "retries", "eventbridge", "target", "amount"])
    return _with_unit(totals)


def team_totals(frame: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per team (and ``by``): events, amount and per_million over its flows."""
    flows = flow_totals(frame, by)
    keys = ["team", *by]
    totals: pd.DataFrame = flows.groupby(keys, as_index=False)[
        ["events", "retries", "eventbridge", "target", "amount"]].sum() if len(flows) else \
        flows.reindex(columns=[*keys, "events", "retries", "eventbridge", "target", "amount"])
    return _with_unit(totals)


def unallocated(frame: pd.DataFrame) -> pd.DataFrame:
    """The lines no flow carried, per month, account, service, usage type and method."""
    rows = frame[frame["rule"] == ""]
    return rows.groupby(["month", "cost_account_id", "service", "usage_type", "method"],
                        as_index=False).agg(amount=("amount", "sum"))


def trend(frame: pd.DataFrame, month: str, through: date | None = None) -> pd.DataFrame:
    """Each flow's month (through ``through``) against the same days of the previous month
    (:func:`orgscope.cost.review.this_and_previous`): per flow, events, eventbridge, target,
    amount, per_million and retry_rate now and before (suffixes ``_now``, ``_before``),
    change (per_million now - before) and the decomposition of that change into
    ``volume`` (the previous cost over fewer or more events), ``target_cost`` and
    ``eventbridge_cost`` (each cost change over the events now), which add up to change
    exactly when both months have events."""
    flows = frame[frame["rule"] != ""]
    now, before = this_and_previous(flows, month, through)
    keys = [*FLOW_KEY, *FLOW_ATTRS]
    joined = flow_totals(now).merge(flow_totals(before), on=keys, how="outer",
                                    suffixes=("_now", "_before"))
    for column in ("events", "retries", "eventbridge", "target", "amount"):
        for suffix in ("_now", "_before"):
            joined[column + suffix] = joined[column + suffix].fillna(0.0)
    joined["change"] = joined["per_million_now"] - joined["per_million_before"]
    scale = PER_EVENTS
    e_now, e_before = joined["events_now"], joined["events_before"]
    joined["volume"] = [
        a * (1 / n - 1 / b) * scale if n > 0 and b > 0 else float("nan")
        for a, n, b in zip(joined["amount_before"], e_now, e_before, strict=True)]
    joined["target_cost"] = [(t1 - t0) / n * scale if n > 0 else float("nan") for t1, t0, n in
                             zip(joined["target_now"], joined["target_before"], e_now,
                                 strict=True)]
    joined["eventbridge_cost"] = [(c1 - c0) / n * scale if n > 0 else float("nan")
                                  for c1, c0, n in zip(joined["eventbridge_now"],
                                                       joined["eventbridge_before"], e_now,
                                                       strict=True)]
    joined["retry_rate_now"] = [r / e if e > 0 else 0.0 for r, e in
                                zip(joined["retries_now"], e_now, strict=True)]
    joined["retry_rate_before"] = [r / e if e > 0 else 0.0 for r, e in
                                   zip(joined["retries_before"], e_before, strict=True)]
    return joined.reset_index(drop=True)


#: A retry rate this many points higher than before names retries as a riser's reason.
RETRY_RISE = 0.01


def reason(row: Mapping[str, float]) -> str:
    """Why a flow's unit cost rose, from :func:`trend`'s decomposition: the largest of
    volume fell, a target's cost rose (retries rose, when its retry rate did too) and
    EventBridge's cost rose."""
    effects = {"volume": row["volume"], "target": row["target_cost"],
               "eventbridge": row["eventbridge_cost"]}
    known = {k: v for k, v in effects.items() if isinstance(v, float) and not math.isnan(v)}
    if not known:
        return "no events in one of the two months"
    main = max(known, key=lambda k: known[k])
    if main == "volume":
        fell = 1 - row["events_now"] / row["events_before"]
        return f"volume fell {fell:.0%}"
    retries_up = row["retry_rate_now"] - row["retry_rate_before"] >= RETRY_RISE
    if main == "target":
        rise = row["target_now"] - row["target_before"]
        text = f"target cost rose ${rise:,.2f}"
        if retries_up:
            text = (f"retries rose ({row['retry_rate_before']:.1%} -> "
                    f"{row['retry_rate_now']:.1%} of events); " + text)
        return text
    rise = row["eventbridge_now"] - row["eventbridge_before"]
    return f"EventBridge cost rose ${rise:,.2f}"


def risers(trends: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """The ``top`` flows whose unit cost rose most (both months with events), each with
    :func:`reason`."""
    rose = trends[(trends["change"] > 0) & trends["change"].notna()]
    rose = rose.sort_values("change", ascending=False).head(top)
    return rose.assign(reason=[reason({str(k): v for k, v in row.items()})
                               for row in rose.to_dict("records")]
                       ).reset_index(drop=True)


# --- end to end ------------------------------------------------------------------------------


def _pattern_values(pattern: object, key: str) -> set[str] | None:
    """The plain string values a pattern (JSON text) lists under ``key``; None when it does
    not test ``key`` (or is not a pattern), so it matches whatever the other side sends."""
    document = parsed_object(pattern)
    values = document.get(key) if document is not None else None
    if not isinstance(values, list):
        return None
    plain = {v for v in values if isinstance(v, str)}
    return plain if len(plain) == len(values) else None  # a matcher: assume it may match


def patterns_overlap(first: object, second: object) -> bool:
    """Whether two patterns can match the same event, judged on ``source`` and
    ``detail-type`` (plain values only; anything else is assumed to overlap)."""
    for key in ("source", "detail-type"):
        a, b = _pattern_values(first, key), _pattern_values(second, key)
        if a is not None and b is not None and not a & b:
            return False
    return True


def end_to_end(totals: pd.DataFrame, patterns: Mapping[tuple[str, str, str, str], object]
               ) -> pd.DataFrame:
    """Each flow that ends at a target (not at another bus) with the hops before it: the
    flows forwarding to its rule's bus (``target_arn`` naming that bus) whose pattern
    overlaps its own (:func:`patterns_overlap`; ``patterns``: rule key -> event pattern),
    one level up. ``totals``: :func:`flow_totals` rows. Columns: FLOW_KEY, team,
    target_kind, events, hops (the upstream flows' keys, as 'account/bus/rule'),
    per_million (its own), upstream_per_million (the hops' sum) and end_to_end (both: the
    cost of carrying one million events from the bus its producers publish to, to its
    target, each event crossing every hop once)."""
    columns = [*FLOW_KEY, "team", "target_kind", "events", "hops", "per_million",
               "upstream_per_million", "end_to_end"]
    if totals.empty:
        return pd.DataFrame(columns=columns)
    forwards = totals[totals["target_kind"] == "bus"]
    rows = []
    for flow in totals[totals["target_kind"] != "bus"].to_dict("records"):
        bus_arn = (f"arn:aws:events:{flow['region']}:{flow['account_id']}:"
                   f"event-bus/{flow['bus']}")
        own = patterns.get((flow["account_id"], flow["region"], flow["bus"], flow["rule"]))
        hops = [u for u in forwards[forwards["target_arn"] == bus_arn].to_dict("records")
                if patterns_overlap(patterns.get((u["account_id"], u["region"], u["bus"],
                                                  u["rule"])), own)]
        upstream = sum(float(u["per_million"]) for u in hops
                       if not math.isnan(float(u["per_million"])))
        rows.append({**{c: flow[c] for c in FLOW_KEY}, "team": flow["team"],
                     "target_kind": flow["target_kind"], "events": flow["events"],
                     "hops": [f"{u['account_id']}/{u['bus']}/{u['rule']}" for u in hops],
                     "per_million": flow["per_million"], "upstream_per_million": upstream,
                     "end_to_end": float(flow["per_million"]) + upstream})
    return pd.DataFrame(rows, columns=columns)
