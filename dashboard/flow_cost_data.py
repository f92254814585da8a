"""Unit cost per event flow on the Cost and Event-flow pages: ``flow_cost_daily`` read for a
month and the month before, and the tables of :mod:`orgscope.cost.flows` with account names.

Plain functions of a store (unit-tested without Streamlit), plus the one cached wrapper the
Event-flow page calls (the Cost page gets its :class:`FlowCost` through its review).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S, open_store
from orgscope.config import Config
from orgscope.cost import flows
from orgscope.cost.attribution import month_of
from orgscope.cost.review import month_before, month_end, month_first, this_and_previous
from orgscope.datasets import FLOW_COST_DAILY
from orgscope.store import Store

log = logging.getLogger(__name__)

#: Columns of the flows table (the page's and the XLSX sheet's).
TABLE_COLUMNS = ["flow", "team", "target_kind", "events", "eventbridge", "target", "amount",
                 "per_million", "per_million_before", "change_pct", "account_id", "bus",
                 "rule", "target_arn"]
#: Columns of the end-to-end table.
ROUTE_COLUMNS = ["flow", "team", "events", "hops", "per_million", "upstream_per_million",
                 "end_to_end"]
#: Flows drawn in the daily chart (the most costly of the month).
CHART_FLOWS = 8


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=columns)


@dataclass(frozen=True)
class FlowCost:
    """One month of unit cost per flow. Amounts unrounded, in USD ($ per million events)."""

    month: str
    through: date | None
    flows: pd.DataFrame = field(default_factory=lambda: _empty(TABLE_COLUMNS))
    teams: pd.DataFrame = field(default_factory=lambda: _empty(
        ["team", "events", "amount", "per_million", "per_million_before", "change_pct"]))
    risers: pd.DataFrame = field(default_factory=lambda: _empty(
        ["flow", "team", "per_million_before", "per_million", "change", "reason"]))
    daily: pd.DataFrame = field(default_factory=lambda: _empty(
        ["date", "flow", "per_million"]))
    unallocated: pd.DataFrame = field(default_factory=lambda: _empty(
        ["account", "service", "usage_type", "method", "amount"]))
    routes: pd.DataFrame = field(default_factory=lambda: _empty(ROUTE_COLUMNS))
    allocated: float = 0.0
    #: Whether the previous month's same days have flow events: risers need them.
    compared: bool = False
    #: The first day any flow delivered events, over the whole store (:func:`flow_event_days`).
    first_day: date | None = None

    @property
    def empty(self) -> bool:
        return self.flows.empty and self.unallocated.empty


def read_flow_cost(store: Store, start: date, end: date,
                   rule: tuple[str, str, str, str] | None = None) -> pd.DataFrame:
    """``flow_cost_daily`` (latest per date) dated in [start, end), of one rule (account_id,
    region, bus, rule) when given; without the producers and computed_at columns."""
    if FLOW_COST_DAILY.name not in store.datasets:
        return FLOW_COST_DAILY.empty_frame()
    where = "date >= ? AND date < ?"
    params: list[object] = [start, end]
    if rule is not None:
        where += " AND account_id = ? AND region = ? AND bus = ? AND rule = ?"
        params += list(rule)
    frame = store.query("SELECT * EXCLUDE (computed_at, producers) FROM flow_cost_daily "
                        f"WHERE {where}", params)
    if len(frame):
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame


def flow_event_days(store: Store) -> tuple[date, date] | None:
    """The first and the last day a flow delivered events (``flow_cost_daily`` rows of a rule
    with events); None when none ever did."""
    if FLOW_COST_DAILY.name not in store.datasets:
        return None
    frame = store.query("SELECT min(date) AS first, max(date) AS last FROM flow_cost_daily "
                        "WHERE rule <> '' AND events > 0")
    first, last = frame["first"].iloc[0], frame["last"].iloc[0]
    if pd.isna(first) or pd.isna(last):
        return None
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def flow_label(row: Mapping[Hashable, object], names: Mapping[str, str]) -> str:
    """'event-bus/central-bus/orders-to-fulfilment -> order-processing sqs' (plain text:
    the sinks escape it)."""
    account = str(row["account_id"])
    target = str(row["target_account_id"])
    return (f"{names.get(account, account)}/{row['bus']}/{row['rule']} -> "
            f"{names.get(target, target)} {row['target_kind']}")


def _change_pct(now: pd.Series, before: pd.Series) -> list[float]:
    return [(n - b) / b * 100 if pd.notna(n) and pd.notna(b) and b else float("nan")
            for n, b in zip(now, before, strict=True)]


def build_flow_cost(store: Store, config: Config, month: str,
                    through: date | None = None) -> FlowCost:
    """``month`` (through ``through``, default its end) against the same days of the month
    before: the flows, the teams, the top risers with their reasons, the daily unit cost of
    the costliest flows, the end-to-end unit cost of the flows that end at a target and the
    lines no flow carried."""
    last = through or month_end(month)
    frame = read_flow_cost(store, month_first(month_before(month)),
                           month_first(month) if last < month_first(month) else
                           last + pd.Timedelta(days=1))
    if frame.empty:
        return FlowCost(month, through)
    names = {a.id: a.name for a in config.accounts}
    trend = flows.trend(frame, month, last)
    now = trend[trend["events_now"] > 0].copy()
    now["flow"] = [flow_label(r, names) for r in now.to_dict("records")]
    table = now.rename(columns={"events_now": "events", "eventbridge_now": "eventbridge",
                                "target_now": "target", "amount_now": "amount",
                                "per_million_now": "per_million"})
    table["change_pct"] = _change_pct(table["per_million"], table["per_million_before"])
    table = table.sort_values("amount", ascending=False)[TABLE_COLUMNS].reset_index(drop=True)
    current, previous = this_and_previous(frame, month, last)
    teams = flows.team_totals(current).merge(
        flows.team_totals(previous)[["team", "per_million"]], on="team", how="left",
        suffixes=("", "_before"))
    teams["change_pct"] = _change_pct(teams["per_million"], teams["per_million_before"])
    routes = _routes(store, current, names)
    teams = teams.merge(_team_end_to_end(routes), on="team", how="left")
    teams = teams[teams["events"] > 0][["team", "events", "amount", "per_million",
                                        "per_million_before", "change_pct", "end_to_end"]]
    rising = flows.risers(trend)
    rising["flow"] = [flow_label(r, names) for r in rising.to_dict("records")]
    rising = rising.rename(columns={"per_million_now": "per_million"})[
        ["flow", "team", "per_million_before", "per_million", "change", "reason"]]
    daily = flows.flow_totals(current, ["date"])
    daily = daily.assign(flow=[flow_label(r, names) for r in daily.to_dict("records")])
    top = set(table["flow"].head(CHART_FLOWS))
    daily = daily[daily["flow"].isin(top) & (daily["events"] > 0)][
        ["date", "flow", "per_million"]]
    lost = flows.unallocated(current)
    lost = lost.assign(account=[names.get(a, a) for a in lost["cost_account_id"]])[
        ["account", "service", "usage_type", "method", "amount"]]
    span = flow_event_days(store)
    return FlowCost(month=month, through=last, flows=table,
                    teams=teams.sort_values("amount", ascending=False).reset_index(drop=True),
                    risers=rising, daily=daily.reset_index(drop=True),
                    unallocated=lost.reset_index(drop=True), routes=routes,
                    allocated=float(current.loc[current["rule"] != "", "amount"].sum()),
                    compared=bool((trend["events_before"] > 0).any()),
                    first_day=span[0] if span else None)


def newest_flow_cost(store: Store, config: Config, month: str, today: date) -> FlowCost | None:
    """For a review of ``month`` whose flows delivered no events: the newest month whose flows
    did, month to date (through its last day with flow events) while it is in progress, whole
    once it ended; None when that is ``month`` itself or no flow ever delivered events."""
    span = flow_event_days(store)
    if span is None or month_of(span[1]) == month:
        return None
    newest = month_of(span[1])
    return build_flow_cost(store, config, newest,
                           span[1] if newest >= month_of(today) else month_end(newest))


def _routes(store: Store, current: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """:func:`orgscope.cost.flows.end_to_end` of the month's flows, labelled for people."""
    rules = store.query("SELECT account_id, region, bus, rule, event_pattern FROM rules")
    patterns = {(str(r.account_id), str(r.region), str(r.bus), str(r.rule)): r.event_pattern
                for r in rules.itertuples(index=False)}
    totals = flows.flow_totals(current)
    totals = totals[totals["events"] > 0]
    routes = flows.end_to_end(totals, patterns)
    if routes.empty:
        return _empty(ROUTE_COLUMNS)
    labels = {tuple(r[c] for c in flows.FLOW_KEY): flow_label(r, names)
              for r in totals.to_dict("records")}
    routes["flow"] = [labels[tuple(r[c] for c in flows.FLOW_KEY)]
                      for r in routes.to_dict("records")]
    routes["hops"] = ["; ".join(hops) for hops in routes["hops"]]
    return routes.sort_values("end_to_end", ascending=False)[ROUTE_COLUMNS].reset_index(
        drop=True)


def _team_end_to_end(routes: pd.DataFrame) -> pd.DataFrame:
    """Per team, $ per million events end to end over its flows that end at a target."""
    if routes.empty:
        return _empty(["team", "end_to_end"])
    weighted = routes.assign(cost=routes["events"] * routes["end_to_end"])
    sums = weighted.groupby("team", as_index=False)[["cost", "events"]].sum()
    return sums.assign(end_to_end=sums["cost"] / sums["events"])[["team", "end_to_end"]]


def method_rows() -> list[tuple[str, str]]:
    """The unit cost's rules, as (topic, rule) rows of the Cost page's method notes."""
    return [
        ("Flow unit cost", "A flow is one target of one rule. Events delivered: the rule's "
         "Invocations minus FailedInvocations (AWS/Events), split evenly over its targets. $ "
         "per million events delivered, this month against the same days of the previous "
         "month."),
        ("Flow: EventBridge", "Custom events are charged to their sender: a producer's "
         "PutEvents line goes to the flows of the buses it may publish to (its own, or one "
         "whose policy admits it) matching its source; a rule's account's line to its "
         "cross-account bus targets; split by events delivered ('" + flows.METHOD_EVENTBRIDGE
         + "')."),
        ("Flow: targets", "Cost Explorer has no resource ids: a target account's whole SQS, "
         "Lambda or Step Functions line is split over the flows delivering to targets of that "
         "kind there, by events ('" + flows.METHOD_TARGET + "'), including what the service "
         "does for other callers. A resource-level source would state '"
         + flows.METHOD_RESOURCE + "'."),
        ("Flow: by usage", "A line counted per event (EventBridge events and invocations, "
         "SQS requests, Lambda requests) with Cost Explorer's usage quantity charges each flow "
         "its events at the line's own price per unit (amount / quantity: '"
         + flows.METHOD_EVENTBRIDGE_USAGE + "', '" + flows.METHOD_TARGET_USAGE + "'); a "
         "producer's events are split evenly over a flow's producers. The rest of the line "
         "is its own row ('" + flows.METHOD_UNUSED + "'). Without a quantity, for Lambda "
         "GB-seconds and Step Functions, or when the flows' events exceed the quantity (the "
         "method then says so), the whole line is shared by events."),
        ("Flow: end to end", "A flow that ends at a target adds the unit cost of the flows "
         "forwarding to its rule's bus whose pattern can match the same events (source and "
         "detail-type), one hop up: what one million events cost from the bus their "
         "producers publish to, to the target. A team's end to end weighs its flows by "
         "events."),
        ("Flow: unallocated", "A line with no events to split it by that day, or that no flow "
         "sends, is kept as its own line ('" + flows.METHOD_NO_EVENTS + "', '"
         + flows.METHOD_NO_FLOW + "'), and so is the usage beyond the flows' ('"
         + flows.METHOD_UNUSED + "'); every line's parts add up to it to the cent."),
    ]


def rule_unit_cost(store: Store, key: tuple[str, str, str, str], today: date) -> pd.DataFrame:
    """One rule's flows this month so far and the same days of last month: target_arn,
    target_kind, events, amount, per_million, events_before, amount_before,
    per_million_before (empty without data)."""
    month = month_of(today)
    own = read_flow_cost(store, month_first(month_before(month)),
                         today + pd.Timedelta(days=1), key)
    columns = ["target_arn", "target_kind", "events", "amount", "per_million",
               "events_before", "amount_before", "per_million_before"]
    if own.empty:
        return _empty(columns)
    trend = flows.trend(own, month, today)
    trend = trend.rename(columns={"events_now": "events", "amount_now": "amount",
                                  "per_million_now": "per_million"})
    return trend[columns].reset_index(drop=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_unit_cost(store_base: str, key: tuple[str, str, str, str],
                        today: date) -> pd.DataFrame:
    return rule_unit_cost(open_store(store_base), key, today)
