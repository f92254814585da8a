"""Unit cost per event flow for tests: the sample organization's inventory, the simulator's
cost model and daily sums of every rule's metrics from the previous month's first day to
``now``, with the flows into order-processing's queues at 40 % of last month's volume this
month (so their unit cost rises, for a reason: volume fell); then the flow-cost step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from orgscope.config import Config
from orgscope.cost.flow_update import update_flow_cost, window
from orgscope.datasets import EVENT_METRICS
from orgscope.store import Store
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import RULE_SPECS, fill_org_store

#: The account whose queues get fewer events this month, and by how much.
FALLEN_ACCOUNT = "777777777777"
FALLEN_TO = 0.4


def daily_metrics(now: datetime, since: date | None = None) -> pd.DataFrame:
    start = max(window(now.date())[0], since or date.min)
    rows = []
    day = start
    while day <= now.date():
        this_month = day.month == now.month and day.year == now.year
        for account_id, bus, rule, target, detail_type, disabled in RULE_SPECS:
            if disabled or not detail_type:
                continue
            events = float((8 + sum(map(ord, rule)) % 40) * 288)
            if this_month and target == FALLEN_ACCOUNT:
                events = round(events * FALLEN_TO)
            stamp = datetime(day.year, day.month, day.day, tzinfo=UTC)
            for metric, value in (("MatchedEvents", events), ("Invocations", events),
                                  ("RetryInvocationAttempts", round(events * 0.01))):
                rows.append({"account_id": account_id, "region": "us-east-1", "bus": bus,
                             "rule": rule, "metric": metric, "ts": stamp, "value": value})
        day += timedelta(days=1)
    return pd.DataFrame(rows, columns=EVENT_METRICS.columns)


def fill_flow_cost(store: Store, config: Config, now: datetime,
                   metrics_since: date | None = None) -> str:
    """Fill ``store`` (inventory, cost, daily rule metrics) and run the flow-cost step at
    ``now``; its summary."""
    fill_org_store(store, now)
    return add_flow_cost(store, config, now, metrics_since)


def add_flow_cost(store: Store, config: Config, now: datetime,
                  metrics_since: date | None = None) -> str:
    """Add cost and daily rule metrics (from ``metrics_since`` when given: a new install) to
    a store that has the sample inventory (:func:`testkit.dashboard_sample.fill_org_store`)
    and run the flow-cost step at ``now``; its summary."""
    fill_cost(store, config, now.date())
    store.write(EVENT_METRICS.name, daily_metrics(now, metrics_since),
                f"{now:%Y%m%dT%H%M%SZ}-daily")
    return update_flow_cost(config, store, now)
