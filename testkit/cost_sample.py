"""Cost for the dashboard tests: the simulator's cost model written straight into cost_daily
(no moto server), a few months ending on ``today``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from orgscope.config import Config
from orgscope.datasets import COST_DAILY
from orgscope.store import Store
from sim.costs import CostModel


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
