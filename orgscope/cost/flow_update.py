"""The flow-cost step's I/O edge: read cost, rule metrics and the inventory from the store,
allocate (:mod:`orgscope.cost.flows`), write ``flow_cost_daily``. Every value reaches DuckDB
as a parameter."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from orgscope.config import Config
from orgscope.cost import flows
from orgscope.cost.review import add_months
from orgscope.datasets import FLOW_COST_DAILY
from orgscope.ownership import known_teams, rule_teams, team_tag_key
from orgscope.store import Store

log = logging.getLogger(__name__)

_RULE_METRICS = ["Invocations", "FailedInvocations", "RetryInvocationAttempts"]
#: The metrics collector triggers the step every few minutes; between cost collections the
#: flows are recomputed at most this often (each run rewrites every day of the window).
RECOMPUTE_EVERY = timedelta(hours=1)


def window(today: date) -> tuple[date, date]:
    """The days each run recomputes: [first day of the previous month, tomorrow), what the
    Cost page's trend compares."""
    return add_months(today, -1), today + timedelta(days=1)


def read_rule_metrics(store: Store, start: date, end: date) -> pd.DataFrame:
    """Daily sums of the per-rule metrics the allocation reads (date, account_id, region,
    bus, rule, metric, value) in [start, end)."""
    marks = ", ".join("?" for _ in _RULE_METRICS)
    return store.query(
        "SELECT CAST(ts AS DATE) AS date, account_id, region, bus, rule, metric, "
        "sum(value) AS value FROM event_metrics WHERE rule IS NOT NULL "
        f"AND metric IN ({marks}) AND ts >= ? AND ts < ? GROUP BY ALL",
        [*_RULE_METRICS, start, end])


def known_accounts(store: Store, config: Config) -> pd.DataFrame:
    """account_id, name, team of every account: config.toml's (its current team), then
    those only the ``accounts`` dataset knows (discovered from AWS Organizations)."""
    listed = pd.DataFrame([(a.id, a.name, a.team) for a in config.accounts],
                          columns=["account_id", "name", "team"])
    seen = store.query("SELECT account_id, name, team FROM accounts")
    seen = seen[~seen["account_id"].isin(listed["account_id"])].fillna("")
    return pd.concat([listed, seen], ignore_index=True) if len(seen) else listed


def compute(store: Store, config: Config, today: date) -> pd.DataFrame:
    """``flow_cost_daily`` rows (without computed_at) for :func:`window` of ``today``."""
    start, end = window(today)
    cost = store.query(
        "SELECT date, account_id, service, usage_type, amount, currency, usage_quantity "
        "FROM cost_daily "
        "WHERE date >= ? AND date < ?", [start, end])
    rules = store.query("SELECT account_id, region, bus, rule, event_pattern, targets, tags "
                        "FROM rules")
    buses = store.query("SELECT account_id, region, bus, allowed_principals FROM event_buses")
    accounts = known_accounts(store, config)
    teams = rule_teams(rules, team_tag_key(config), known_teams(config))
    edges = flows.flow_edges(rules, buses, accounts, teams,
                             dict(zip(accounts["account_id"], accounts["team"], strict=True)))
    days = flows.flow_days(edges, flows.rule_days(read_rule_metrics(store, start, end)))
    return flows.allocate(flows.cost_lines(cost), edges, days)


def _newest(store: Store, dataset: str, column: str) -> pd.Timestamp | None:
    frame = store.query(f"SELECT max({column}) AS at FROM {dataset}")
    value = frame["at"].iloc[0] if len(frame) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value)


def _waiting_for_events(store: Store, computed: pd.Timestamp) -> bool:
    """Whether the last computation found flows but not one event (no rule metrics yet: a
    new install, or cost collected before the first metrics cycle, as in the demo's first
    minute) and a metrics run has succeeded since. Without this the flows would show their
    first events only an hour later."""
    seen = store.query(
        "SELECT count(*) FILTER (WHERE events > 0) AS with_events, "
        "count(*) FILTER (WHERE method = ?) AS waiting FROM flow_cost_daily",
        [flows.METHOD_NO_EVENTS])
    if int(seen["with_events"].iloc[0]) or not int(seen["waiting"].iloc[0]):
        return False
    ran = store.query("SELECT max(ok_at) AS at FROM runs_latest "
                      "WHERE collector = 'metrics'")["at"].iloc[0]
    return ran is not None and not pd.isna(ran) and pd.Timestamp(ran) >= computed


def due(store: Store, moment: datetime) -> bool:
    """Whether to recompute: never computed, cost collected since (or in the same second:
    both are stamped to the second, and a cost cycle can start in the second the step ran),
    the first rule metrics collected since a computation that had flows but no events, or
    the last computation is :data:`RECOMPUTE_EVERY` old."""
    computed = _newest(store, FLOW_COST_DAILY.name, "computed_at")
    if computed is None:
        return True
    collected = _newest(store, "cost_daily", "collected_at")
    return (collected is not None and collected >= computed) or \
        pd.Timestamp(moment) - computed >= RECOMPUTE_EVERY or \
        _waiting_for_events(store, computed)


def update_flow_cost(config: Config, store: Store, now: datetime | None = None,
                     force: bool = False) -> str:
    """Recompute and write ``flow_cost_daily`` for the window when :func:`due` (or
    ``force``); a one-line summary."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if not force and not due(store, moment):
        return "flow cost: up to date"
    frame = compute(store, config, moment.date())
    if frame.empty:
        return "flow cost: no cost lines of event flows in the window"
    frame = frame.assign(computed_at=pd.Timestamp(moment))
    store.write(FLOW_COST_DAILY.name, frame, f"flowcost-{moment:%Y%m%dT%H%M%SZ}")
    allocated = frame[frame["rule"] != ""]
    summary = (f"flow cost: {allocated[flows.FLOW_KEY].drop_duplicates().shape[0]} flows, "
               f"${allocated['amount'].sum():,.2f} allocated, "
               f"${frame.loc[frame['rule'] == '', 'amount'].sum():,.2f} unallocated")
    log.info("%s (%s to %s)", summary, frame["date"].min(), frame["date"].max())
    return summary
