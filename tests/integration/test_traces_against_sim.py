"""The xray collector and stitching against the simulated organization, through the Runner.

The simulator writes X-Ray segments of sampled order flows in every account they cross
(customer-web -> central-bus -> order-processing -> payment-service, inventory-mgmt; sim/
tracing.py); the collector reads them back per account through the read role; stitching joins
them into one trace per order, re-linking consumers whose X-Ray trace id broke at the bus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest

from collectors import registry
from orgscope import wiring
from orgscope.runner import CycleResult, Runner
from orgscope.traces.stitch import stitch
from sim.scenario import ScenarioEvent
from sim.tracing import ACCOUNT_OF
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

FLOW_ACCOUNTS = {"111111111111": "customer-web", "121212121212": "central-bus",
                 "777777777777": "order-processing", "999999999999": "payment-service",
                 "666666666666": "inventory-mgmt"}


@dataclass
class Traces:
    org: Org
    runner: Runner
    first: CycleResult
    second: CycleResult
    spans: pd.DataFrame
    stitched: pd.DataFrame


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traces]:
    with simulated_org(tmp_path_factory.mktemp("traces")) as org:
        runner = wiring.runner(wiring.load(org.config_path))
        started = org.sim.started_at
        assert started is not None
        first = runner.run_cycle([registry.get("xray")], now=started)
        later = started + timedelta(minutes=3)
        org.sim.tick(later)
        second = runner.run_cycle([registry.get("xray")], now=later)
        spans = pd.DataFrame(org.query("select * from spans"))
        yield Traces(org, runner, first, second, spans, stitch(spans))


def test_every_account_is_read_and_only_flow_accounts_have_spans(traces: Traces) -> None:
    assert {run.status for run in traces.first.runs + traces.second.runs} == {"ok"}
    assert set(traces.spans["account_id"]) == set(FLOW_ACCOUNTS)
    calls: dict[str, int] = {}
    for run in traces.first.runs + traces.second.runs:
        assert run.calls.by_operation["xray:GetTraceSummaries"] == 1
        calls[run.account.id] = calls.get(run.account.id, 0) + \
            run.calls.by_operation["xray:BatchGetTraces"]
    for account in FLOW_ACCOUNTS:
        # at most 5 ids a BatchGetTraces call
        traced = traces.spans[traces.spans["account_id"] == account]["trace_id"].nunique()
        assert traced / 5 <= calls[account] <= traced / 5 + 2
    assert set(ACCOUNT_OF) == set(FLOW_ACCOUNTS.values())


def test_incremental_run_reads_only_the_new_window(traces: Traces) -> None:
    marks = traces.org.query("select account_id, watermark from watermarks "
                             "where collector = 'xray'")
    assert len(marks) == len(traces.second.runs)
    first_rows = {run.account.id: run.rows for run in traces.first.runs}
    second_rows = {run.account.id: run.rows for run in traces.second.runs}
    for account in FLOW_ACCOUNTS:
        assert 0 < second_rows[account] < first_rows[account]


def test_an_order_crossing_five_accounts_comes_back_as_one_trace_in_parent_order(
        traces: Traces) -> None:
    stitched = traces.stitched
    by_trace = stitched.groupby("trace_id")["account_id"].nunique()
    whole = [t for t, n in by_trace.items() if n == len(FLOW_ACCOUNTS)]
    assert len(whole) >= 30
    unbroken = [t for t in whole
                if (stitched[stitched["trace_id"] == t]["original_trace_id"] == t).all()]
    assert unbroken
    trace = stitched[stitched["trace_id"] == unbroken[0]].reset_index(drop=True)
    assert trace["break"].isna().all()
    position = {span: i for i, span in enumerate(trace["span_id"])}
    for _, row in trace.iterrows():
        if pd.notna(row["parent_id"]):
            assert position[row["parent_id"]] < position[row["span_id"]]
    assert trace.loc[0, "service"] == "customer-web" and trace.loc[0, "depth"] == 0
    order = list(dict.fromkeys(trace["service"]))
    assert order == ["customer-web", "central-bus", "order-processing", "payment-service",
                     "inventory-mgmt"]
    api = trace.loc[0]
    assert (api["http_method"], api["http_status"]) == ("POST", 201)
    assert api["http_url"].endswith("/orders")


def test_a_broken_trace_id_is_relinked_by_traceparent(traces: Traces) -> None:
    stitched = traces.stitched
    relinked = stitched[stitched["linked_from"].notna()]
    assert len(relinked) >= 5
    for _, root in relinked.head(5).iterrows():
        assert root["service"] == "order-processing"
        assert root["original_trace_id"] != root["trace_id"]
        trace = stitched[stitched["trace_id"] == root["trace_id"]]
        producer = trace[trace["span_id"] == root["linked_from"]]
        assert producer[["service", "name"]].values.tolist() == [["customer-web",
                                                                  "EventBridge"]]
        # the consumer's whole X-Ray trace moved with it
        moved = trace[trace["original_trace_id"] == root["original_trace_id"]]
        assert set(moved["service"]) == {"order-processing", "payment-service",
                                         "inventory-mgmt"}
        assert json.loads(root["annotations"])["traceparent"] == root["traceparent"]
    assert stitched["break"].isna().all()


def test_a_latency_spike_scenario_entry_slows_that_service_in_the_next_spans(
        traces: Traces) -> None:
    started = traces.org.sim.started_at
    assert started is not None
    at = started + timedelta(minutes=3)
    traces.org.sim.apply(ScenarioEvent(0, timedelta(minutes=3), "latency_spike",
                                       {"service": "payment-service", "ms": 700,
                                        "duration": "10m"}), at)
    later = started + timedelta(minutes=6)
    traces.org.sim.tick(later)
    cycle = traces.runner.run_cycle([registry.get("xray")], now=later)
    assert {run.status for run in cycle.runs} == {"ok"}
    spans = pd.DataFrame(traces.org.query(
        "select service, origin, start, duration_ms from spans where origin is not null"))
    after = spans[spans["start"] >= pd.Timestamp(at.replace(second=0, microsecond=0))]
    before = spans[spans["start"] < pd.Timestamp(at.replace(second=0, microsecond=0))]
    slow = after.groupby("service")["duration_ms"].median()
    base = before.groupby("service")["duration_ms"].median()
    assert slow["payment-service"] > base["payment-service"] + 600
    assert abs(slow["customer-web"] - base["customer-web"]) < 20
