"""Dead-letter queues of the Event-flow page (dashboard.dlqs)."""

from __future__ import annotations

from datetime import datetime

from dashboard import buckets, dlqs
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import (
    FAILING_RULE,
)


def test_dlqs_latest_deepest_first_and_bucketed(flow_store: Store, flow_now: datetime):
    latest = dlqs.dlq_latest(flow_store, Filters())
    assert latest["queue"].iloc[0] == f"{FAILING_RULE}-dlq"
    assert latest["visible"].iloc[0] > 0 and (latest["visible"].iloc[1:] == 0).all()
    since, until = buckets.window(Filters(time_range="30d"), flow_now)
    series = dlqs.dlq_series(flow_store, Filters(), since, until)
    assert series.groupby("queue_arn").size().max() <= buckets.MAX_POINTS
    assert dlqs.dlq_latest(flow_store, Filters(teams=("payments",))).empty
