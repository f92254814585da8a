"""The simulator's X-Ray segments of sampled order flows (sim/tracing.py), pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from collectors.xray import segment_rows
from orgscope.traces.otlp import log_event_row
from orgscope.traces.stitch import stitch
from sim.scenario import ScenarioError, load_scenario
from sim.tracing import (
    OTEL_SERVICES,
    SERVICES,
    FlowSegments,
    TraceFault,
    TraceFaults,
    documents_json,
    flows_in_minute,
    minute_segments,
)

ACCOUNTS = {service: f"{n}" * 12 for n, service in enumerate(SERVICES, start=1)}
MINUTE = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)  # dinner peak


NO_FAULTS = TraceFaults()


def simulate(minutes: int = 20, faults: TraceFaults = NO_FAULTS, delivered: bool = True,
             otel: frozenset[str] = frozenset()) -> FlowSegments:
    out = FlowSegments()
    for m in range(minutes):
        minute_segments(MINUTE + timedelta(minutes=m), 7, accounts=ACCOUNTS, faults=faults,
                        delivered=delivered, out=out, otel=otel)
    return out


def spans(out: FlowSegments) -> pd.DataFrame:
    rows = [row for account, docs in documents_json(out.documents).items() for doc in docs
            for row in segment_rows(json.loads(doc), account_id=account, region="us-east-1")]
    rows += [log_event_row(event["message"], account_id=account, region="us-east-1")
             for account, events in out.spans.items() for event in events]
    return pd.DataFrame(rows)


def test_a_sample_of_orders_is_traced_in_every_account_it_crosses() -> None:
    out = simulate()
    assert 1 <= flows_in_minute(MINUTE, 7) <= 4
    assert out.flows == sum(flows_in_minute(MINUTE + timedelta(minutes=m), 7)
                            for m in range(20))
    assert set(out.documents) == set(ACCOUNTS.values())
    assert all(len(docs) == out.flows for docs in out.documents.values())
    assert 0 < out.broken < out.flows
    frame = spans(out)
    assert (frame["end"] > frame["start"]).all()
    consumer = frame[frame["service"] == "order-processing"].iloc[0]
    assert consumer["traceparent"].startswith("00-")
    assert simulate().documents == out.documents  # deterministic per seed and minute


def test_stitching_the_simulated_flows_gives_one_trace_per_order() -> None:
    out = simulate()
    stitched = stitch(spans(out))
    assert stitched["trace_id"].nunique() == out.flows
    assert stitched["break"].isna().all()
    assert stitched["linked_from"].notna().sum() == out.broken


def test_latency_spike_slows_one_service_only() -> None:
    spike = TraceFaults((TraceFault("latency_spike", "payment-service", 400.0, MINUTE,
                                    MINUTE + timedelta(hours=1)),))
    base = spans(simulate()).groupby("service")["duration_ms"].median()
    slow = spans(simulate(faults=spike)).groupby("service")["duration_ms"].median()
    assert slow["payment-service"] - base["payment-service"] > 350
    for service in ("customer-web", "central-bus", "inventory-mgmt"):
        assert abs(slow[service] - base[service]) < 5, service


def test_error_burst_faults_one_service_and_its_callers() -> None:
    burst = TraceFaults((TraceFault("error_burst", "inventory-mgmt", 1.0, MINUTE,
                                    MINUTE + timedelta(hours=1)),))
    frame = spans(simulate(faults=burst))
    tops = frame[frame["origin"].notna()]
    faulty = set(tops[tops["fault"]]["service"])
    assert faulty == {"inventory-mgmt", "order-processing"}
    assert set(tops[tops["service"] == "inventory-mgmt"]["http_status"]) == {500}
    assert not spans(simulate())["fault"].any()


def test_a_rule_that_does_not_deliver_ends_the_flow_at_the_bus() -> None:
    out = simulate(delivered=False)
    assert set(out.documents) == {ACCOUNTS["customer-web"], ACCOUNTS["central-bus"]}


def test_scenario_trace_faults_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[events]]\nat = "+1m"\naction = "latency_spike"\n'
                    'service = "payment-service"\nms = 800\nduration = "10m"\n'
                    '[[events]]\nat = "+2m"\naction = "error_burst"\n'
                    'service = "inventory-mgmt"\nrate = 0.5\nduration = "5m"\n')
    spike, burst = load_scenario(path)
    assert spike.params == {"service": "payment-service", "ms": 800, "duration": "10m"}
    assert burst.params["rate"] == 0.5
    path.write_text('[[events]]\nat = "+1m"\naction = "latency_spike"\nservice = "billing"\n'
                    'ms = -1\n')
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    text = "\n".join(error.value.lines)
    assert "service = 'billing' must be a traced service: customer-web, central-bus" in text
    assert "ms = -1 must be a positive number of milliseconds" in text
    assert "required key 'duration' is missing" in text


def test_otel_services_send_the_same_spans_as_otel_log_events() -> None:
    xray = simulate(minutes=5)
    mixed = simulate(minutes=5, otel=OTEL_SERVICES)
    inventory = ACCOUNTS["inventory-mgmt"]
    assert inventory not in mixed.documents and len(mixed.spans) == 1
    assert all(event["timestamp"] > 0 for event in mixed.spans[inventory])
    assert mixed.documents == {a: d for a, d in xray.documents.items() if a != inventory}
    before, after = spans(xray), spans(mixed)
    assert set(after[after["account_id"] == inventory]["source"]) == {"otel"}
    keys = ["trace_id", "span_id", "parent_id", "service", "start", "end", "fault"]
    same = before[keys].sort_values(["trace_id", "span_id"]).reset_index(drop=True)
    assert same.equals(after[keys].sort_values(["trace_id", "span_id"]).reset_index(drop=True))
    server = after[(after["source"] == "otel") & after["http_status"].notna()].iloc[0]
    assert server["name"] == "POST /reservations" and server["http_method"] == "POST"
    stitched = stitch(after)
    assert stitched["trace_id"].nunique() == mixed.flows and stitched["break"].isna().all()
