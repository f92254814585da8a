"""Cost for the dashboard tests: the simulator's cost model written straight into cost_daily
(no moto server), a few months ending on ``today``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from orgscope.config import Config
from orgscope.datasets import COST_DAILY, COST_RESOURCES
from orgscope.store import Store
from sim.costs import CostModel
from sim.data_export import resource_lines


def cost_frame(model: CostModel, start: date, collected_at: datetime) -> pd.DataFrame:
    """``model``'s rows from ``start`` as cost_daily rows."""
    frame = model.frame[model.frame["day"] >= start]
    return pd.DataFrame({
        "date": frame["day"], "account_id": frame["account_id"],
        "team_tag": frame["team_tag"], "service": frame["service"],
        "usage_type": frame["usage_type"], "amount": frame["micros"] / 1e6,
        "currency": "USD", "estimated": [model.estimated(d) for d in frame["day"]],
        "collected_at": collected_at,
    })


def fill_cost(store: Store, config: Config, today: date, months: int = 3) -> CostModel:
    """Write ``months`` calendar months of the reference cost model through ``today``."""
    model = CostModel.reference(config.accounts, today)
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for _ in range(months - 2):
        start = (start - timedelta(days=1)).replace(day=1)
    collected = datetime.combine(today, datetime.min.time(), UTC)
    store.write(COST_DAILY.name, cost_frame(model, start, collected), "cost-sample")
    return model


def fill_resources(store: Store, model: CostModel, resources: dict[tuple[str, str], list[str]],
                   start: date) -> pd.DataFrame:
    """Write ``model``'s resource lines from ``start`` (split over ``resources`` as the
    simulator's data export splits them, sim/data_export.py) into cost_resources; returns
    the rows written."""
    lines = resource_lines(model, resources)
    lines = lines[(lines["day"] >= start) & (lines["resource_id"] != "")]
    frame = pd.DataFrame({
        "date": lines["day"], "account_id": lines["account_id"], "service": lines["service"],
        "usage_type": lines["usage_type"], "resource_id": lines["resource_id"],
        "team_tag": lines["team_tag"], "amount": lines["micros"] / 1e6,
        "usage_quantity": lines["quantity"], "currency": "USD",
        "collected_at": datetime.combine(model.today, datetime.min.time(), UTC),
    })
    store.write(COST_RESOURCES.name, frame, "resources-sample")
    return frame
