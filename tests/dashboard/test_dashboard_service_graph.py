"""The service map (dashboard.service_graph) on a tmp store holding the simulator's order flows."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from dashboard import service_graph
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.traces_sample import FLOW_ACCOUNTS, SLOW_SERVICE, fill_traces, sample_window


def test_service_map_shows_where_the_latency_starts(traced: tuple[Store, pd.DataFrame],
                                                    now: datetime) -> None:
    store, summaries = traced
    graph = service_graph.service_map(store, Filters(), sample_window(now))
    nodes = graph.nodes.set_index("service")
    assert set(nodes.index) == set(FLOW_ACCOUNTS)
    assert graph.traces == graph.matched == len(summaries)
    assert bool(nodes.loc[SLOW_SERVICE, "rose"]) and bool(nodes.loc[SLOW_SERVICE,
                                                                   "rise_source"])
    # order-processing waits for payment-service: its p99 rose too, but the rise starts below
    assert bool(nodes.loc["order-processing", "rose"])
    assert not bool(nodes.loc["order-processing", "rise_source"])
    assert not nodes.loc[["customer-web", "central-bus", "inventory-mgmt"], "rose"].any()
    # the layout follows the calls: each account's column after its caller's
    x = nodes["x"]
    assert x["customer-web"] < x["central-bus"] < x["order-processing"] < x[SLOW_SERVICE]
    assert set(graph.boxes["account_id"]) == set(FLOW_ACCOUNTS.values())
    crossing = graph.edges[graph.edges["cross_account"]]
    assert {("order-processing", SLOW_SERVICE)} <= set(zip(
        crossing["source_service"], crossing["target_service"], strict=True))


def test_service_map_without_a_fault_flags_nothing_and_caps_traces(
        org_store: Store, now: datetime) -> None:
    fill_traces(org_store, now, spike=False)
    graph = service_graph.service_map(org_store, Filters(), sample_window(now), max_traces=10)
    assert not graph.nodes["rose"].any()
    assert graph.traces == 10 and graph.matched > 10
    narrowed = service_graph.service_map(org_store, Filters(account_ids=("222222222222",)),
                              sample_window(now))
    assert narrowed.nodes.empty and narrowed.traces == 0


def test_p99_rises_needs_enough_history_and_calls() -> None:
    start = pd.Timestamp("2026-11-26 08:00", tz="UTC")

    def frame(p99s: list[float], counts: list[int] | None = None) -> pd.DataFrame:
        n = len(p99s)
        return pd.DataFrame({
            "bucket_start": [start + pd.Timedelta(minutes=5 * i) for i in range(n)],
            "service": "s", "account_id": "1", "count": counts or [10] * n,
            "p50_ms": p99s, "p95_ms": p99s, "p99_ms": p99s, "error_rate": 0.0})

    rose = service_graph.p99_rises(frame([20, 22, 21, 400]))
    assert rose["rose"].tolist() == [True] and rose["usual_p99_ms"].iloc[0] == 21
    assert service_graph.p99_rises(frame([20, 22, 400])).empty  # too little history
    rises = service_graph.p99_rises
    assert rises(frame([20, 22, 21, 60]))["rose"].tolist() == [False]  # < 50 ms more
    # a thin latest bucket is not the latest one counted
    assert rises(frame([20, 22, 21, 20, 900], [9, 9, 9, 9, 1]))["rose"].tolist() == \
        [False]
