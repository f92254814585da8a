"""The xray and otel collectors, stitching, the traces step and the views against the
simulated organization, through the Runner.

The simulator writes X-Ray segments of sampled order flows in every account they cross
(customer-web -> central-bus -> order-processing -> payment-service, inventory-mgmt; sim/
tracing.py), except inventory-mgmt, which sends OpenTelemetry spans to its aws/spans log
group; the collectors read them back per account through the read role; stitching joins them
into one trace per order, re-linking consumers whose X-Ray trace id broke at the bus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest

from orgscope import plugins, wiring
from orgscope.plugins import run_steps
from orgscope.runner import CycleResult, Runner
from orgscope.traces.stitch import stitch
from orgscope.traces.update import read_traces
from orgscope.traces.views import latency_percentiles
from sim.scenario import ScenarioEvent
from sim.tracing import ACCOUNT_OF
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

SPAN_COLLECTORS = [plugins.collector("xray"), plugins.collector("otel")]
INVENTORY = "666666666666"
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
        first = runner.run_cycle(SPAN_COLLECTORS, now=started)
        later = started + timedelta(minutes=3)
        org.sim.tick(later)
        second = runner.run_cycle(SPAN_COLLECTORS, now=later)
        spans = pd.DataFrame(org.query("select * from spans"))
        yield Traces(org, runner, first, second, spans, stitch(spans))


def test_every_account_is_read_and_only_flow_accounts_have_spans(traces: Traces) -> None:
    runs = traces.first.runs + traces.second.runs
    assert {run.status for run in runs} == {"ok"}
    assert len(runs) == 2 * 2 * 13
    assert set(traces.spans["account_id"]) == set(FLOW_ACCOUNTS)
    sources = traces.spans.groupby("account_id")["source"].agg(set).to_dict()
    assert sources == {a: {"otel"} if a == INVENTORY else {"xray"} for a in FLOW_ACCOUNTS}
    calls: dict[str, int] = {}
    for run in runs:
        if run.collector == "otel":
            assert run.calls.by_operation["logs:FilterLogEvents"] == 1
            continue
        assert run.calls.by_operation["xray:GetTraceSummaries"] == 1
        calls[run.account.id] = calls.get(run.account.id, 0) + \
            run.calls.by_operation["xray:BatchGetTraces"]
    xray = traces.spans[traces.spans["source"] == "xray"]
    for account in set(FLOW_ACCOUNTS) - {INVENTORY}:
        # at most 5 ids a BatchGetTraces call
        traced = xray[xray["account_id"] == account]["trace_id"].nunique()
        assert traced / 5 <= calls[account] <= traced / 5 + 2
    assert calls[INVENTORY] == 0
    assert set(ACCOUNT_OF) == set(FLOW_ACCOUNTS.values())


def test_incremental_run_reads_only_the_new_window(traces: Traces) -> None:
    marks = traces.org.query("select collector, account_id, watermark from watermarks "
                             "where collector in ('xray', 'otel')")
    assert len(marks) == len(traces.second.runs) == 2 * 13
    first_rows = {run.account.id: 0 for run in traces.first.runs}
    second_rows = dict(first_rows)
    for run in traces.first.runs:
        first_rows[run.account.id] += run.rows
    for run in traces.second.runs:
        second_rows[run.account.id] += run.rows
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
    # inventory-mgmt's OTel spans (aws/spans) hang under order-processing's X-Ray call
    otel = trace[trace["source"] == "otel"]
    assert set(otel["account_id"]) == {INVENTORY} and len(otel) == 2
    server = otel[otel["depth"] == otel["depth"].min()].iloc[0]
    caller = trace[trace["span_id"] == server["parent_id"]].iloc[0]
    assert (caller["service"], caller["name"], caller["source"]) == \
        ("order-processing", "inventory-mgmt", "xray")
    assert server["name"] == "POST /reservations"
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


def test_the_traces_step_stores_one_summary_per_stitched_trace(traces: Traces) -> None:
    summaries = run_steps(traces.runner, ["otel"])
    assert summaries["traces"] is not None and summaries["traces"].startswith("traces: ")
    stored = read_traces(traces.runner.store, traces.first.started_at - timedelta(hours=2))
    assert len(stored) > 0
    assert stored["trace_id"].is_unique
    stitched = traces.stitched
    whole = stored[stored["accounts"].map(len) == len(FLOW_ACCOUNTS)]
    assert len(whole) > 0
    for row in whole.head(5).to_dict("records"):
        trace = stitched[stitched["trace_id"] == row["trace_id"]]
        assert row["span_count"] == len(trace)
        assert list(row["services"]) == ["customer-web", "central-bus", "order-processing",
                                         "payment-service", "inventory-mgmt"]
        assert set(row["member_trace_ids"]) == set(trace["original_trace_id"])
        assert "inventory" in list(row["teams"]) and row["status"] == "ok"
    assert (whole["member_trace_ids"].map(len) == 2).any()  # re-linked at the bus
    # stitching again (the next cycle's step) adds no second row per trace
    run_steps(traces.runner, ["xray"])
    again = read_traces(traces.runner.store, traces.first.started_at - timedelta(hours=2))
    assert again["trace_id"].is_unique and len(again) >= len(stored)


def test_a_latency_spike_moves_that_services_p99_only(traces: Traces) -> None:
    started = traces.org.sim.started_at
    assert started is not None
    at = started + timedelta(minutes=3)
    traces.org.sim.apply(ScenarioEvent(0, timedelta(minutes=3), "latency_spike",
                                       {"service": "payment-service", "ms": 700,
                                        "duration": "10m"}), at)
    later = started + timedelta(minutes=8)
    traces.org.sim.tick(later)
    cycle = traces.runner.run_cycle(SPAN_COLLECTORS, now=later)
    assert {run.status for run in cycle.runs} == {"ok"}
    spans = traces.runner.store.query("select * from spans")
    latency = latency_percentiles(spans, "1min")
    spiked_from = pd.Timestamp(at.replace(second=0, microsecond=0) + timedelta(minutes=1))
    after = latency[latency["bucket_start"] >= spiked_from]
    before = latency[latency["bucket_start"] < spiked_from - pd.Timedelta(minutes=1)]
    assert after["bucket_start"].nunique() >= 3
    moved = after.groupby("service")["p99_ms"].median() - \
        before.groupby("service")["p99_ms"].median()
    assert moved["payment-service"] > 600
    for service in ("customer-web", "central-bus", "inventory-mgmt"):
        assert abs(moved[service]) < 60, (service, moved[service])
    # order-processing calls payment-service synchronously: it waits, and moves by no more
    assert moved["order-processing"] <= moved["payment-service"] + 60
