"""Views over stitched spans: trace summaries, service map, latency percentiles."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from orgscope.traces.stitch import stitch
from orgscope.traces.views import (
    EDGE_COLUMNS,
    LATENCY_COLUMNS,
    NODE_COLUMNS,
    SUMMARY_COLUMNS,
    entry_mask,
    latency_percentiles,
    merge_annotations,
    service_map,
    trace_summaries,
)
from tests.traces.test_stitch import CONSUMER, PRODUCER, T0, frame, sid, span

TEAMS = {"1" * 12: "web", "2" * 12: "platform", "3" * 12: "orders"}


def order_flow(*, broken: bool = False, fault: bool = False) -> pd.DataFrame:
    """web (account 1) -> bus (2) -> orders (3, with an internal DB subsegment)."""
    api = span(PRODUCER, sid(1), None, ms=0, account="1", service="web", end_ms=200,
               annotations={"order_id": "o-1"})
    put = span(PRODUCER, sid(2), sid(1), ms=5, account="1", service="web", end_ms=20)
    bus = span(PRODUCER, sid(3), sid(2), ms=10, account="2", service="bus", end_ms=50)
    rule = span(PRODUCER, sid(4), sid(3), ms=12, account="2", service="bus", end_ms=40)
    parent = None if broken else sid(4)
    trace = CONSUMER if broken else PRODUCER
    consumer = span(trace, sid(5), parent, ms=60, account="3", service="orders", end_ms=100,
                    annotations={"traceparent": f"00-{PRODUCER}-{sid(2)}-01",
                                 "event_rule": "r", "order_id": "o-1"})
    db = span(trace, sid(6), sid(5), ms=70, account="3", service="orders", end_ms=30)
    if fault:
        consumer["fault"] = True
        consumer["http_status"] = 500
    return frame(api, put, bus, rule, consumer, db)


def test_one_summary_per_stitched_trace_with_every_contract_column() -> None:
    summaries = trace_summaries(stitch(order_flow()), TEAMS)
    assert list(summaries.columns) == SUMMARY_COLUMNS
    assert len(summaries) == 1
    row = summaries.iloc[0]
    assert row["trace_id"] == PRODUCER and row["member_trace_ids"] == [PRODUCER]
    assert (row["root_service"], row["root_name"], row["root_account_id"]) == \
        ("web", sid(1), "1" * 12)
    assert row["accounts"] == ["1" * 12, "2" * 12, "3" * 12]
    assert row["services"] == ["web", "bus", "orders"]
    assert row["teams"] == ["web", "platform", "orders"]
    assert row["span_count"] == 6
    assert row["start"] == pd.Timestamp(T0)
    assert row["duration_ms"] == 200.0
    assert (row["faults"], row["errors"], row["throttles"], row["breaks"]) == (0, 0, 0, 0)
    assert row["status"] == "ok"
    assert json.loads(row["annotations"]) == {
        "order_id": "o-1", "traceparent": f"00-{PRODUCER}-{sid(2)}-01", "event_rule": "r"}


def test_a_relinked_trace_lists_both_collected_ids_and_a_fault_sets_status() -> None:
    summaries = trace_summaries(stitch(order_flow(broken=True, fault=True)), TEAMS)
    assert len(summaries) == 1
    row = summaries.iloc[0]
    assert row["trace_id"] == PRODUCER
    assert row["member_trace_ids"] == [PRODUCER, CONSUMER]
    assert row["faults"] == 1 and row["status"] == "fault"


def test_status_error_throttle_and_breaks_counted() -> None:
    rows = order_flow()
    rows.loc[rows["span_id"] == sid(3), "throttle"] = True
    rows.loc[rows["span_id"] == sid(3), "error"] = True
    # an orphan whose parent was never collected: a break, its own piece of the trace
    rows.loc[rows["span_id"] == sid(6), "parent_id"] = sid(99)
    row = trace_summaries(stitch(rows), {}).iloc[0]
    assert (row["errors"], row["throttles"], row["breaks"]) == (1, 1, 1)
    assert row["status"] == "error"
    assert row["teams"] == []  # no team known for any account


def test_a_span_without_end_counts_by_its_start() -> None:
    rows = frame(span(PRODUCER, sid(1), None, ms=0, end_ms=10),
                 span(PRODUCER, sid(2), sid(1), ms=50, end_ms=None))
    row = trace_summaries(stitch(rows), TEAMS).iloc[0]
    assert row["duration_ms"] == 50.0


def test_empty_input_gives_empty_frames_with_the_columns() -> None:
    empty = stitch(frame())
    assert list(trace_summaries(empty, TEAMS).columns) == SUMMARY_COLUMNS
    nodes, edges = service_map(empty)
    assert list(nodes.columns) == NODE_COLUMNS and list(edges.columns) == EDGE_COLUMNS
    assert list(latency_percentiles(frame(), "5min").columns) == LATENCY_COLUMNS


def test_merge_annotations_keeps_agreeing_values_and_lists_disagreeing_ones() -> None:
    merged = merge_annotations([json.dumps({"a": 1, "b": "x"}), None, "not json", "[1]",
                                json.dumps({"a": 1, "b": "y", "c": True})])
    assert merged == {"a": 1, "b": ["x", "y"], "c": True}


def test_entry_spans_are_segments_not_subsegments() -> None:
    rows = order_flow()
    mask = entry_mask(rows)
    entries = set(rows[mask]["span_id"])
    assert entries == {sid(1), sid(3), sid(5)}


def test_service_map_nodes_and_cross_account_edges() -> None:
    flows = pd.concat([order_flow(), order_flow(fault=True).assign(
        trace_id=lambda f: f["trace_id"].str.replace("6b07", "7b07"))], ignore_index=True)
    nodes, edges = service_map(stitch(flows))
    assert list(nodes.columns) == NODE_COLUMNS
    by_service = nodes.set_index("service")
    assert by_service.loc["orders", "calls"] == 2
    assert by_service.loc["orders", "faults"] == 1
    assert by_service.loc["orders", "errors"] == 0
    assert by_service.loc["orders", "p95_ms"] == 100.0
    assert by_service.loc["web", "region"] == "us-east-1"
    pairs = {(e.source_service, e.target_service): e for e in edges.itertuples()}
    assert set(pairs) == {("web", "bus"), ("bus", "orders")}
    assert pairs[("bus", "orders")].calls == 2
    assert pairs[("bus", "orders")].errors == 1
    assert pairs[("bus", "orders")].cross_account
    assert pairs[("web", "bus")].p95_ms == 50.0


def test_service_map_links_a_relinked_consumer_to_its_producer() -> None:
    _, edges = service_map(stitch(order_flow(broken=True)))
    # the consumer's parent became the producer's PutEvents span (web)
    assert {(e.source_service, e.target_service) for e in edges.itertuples()} == \
        {("web", "bus"), ("web", "orders")}


def _calls(service: str, account: str, durations: list[float], minute: int,
           errors: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i, ms in enumerate(durations):
        row = span(f"{minute:04x}{i:04x}{'a' * 24}", sid(1000 + i), None,
                   ms=minute * 60_000 + i, account=account, service=service, end_ms=ms)
        row["error"] = i < errors
        rows.append(row)
    return rows


def test_latency_percentiles_per_bucket_service_and_account() -> None:
    rows = frame(*_calls("pay", "1", [float(v) for v in range(1, 101)], 0, errors=10),
                 *_calls("pay", "1", [500.0] * 4, 6),
                 *_calls("inv", "2", [10.0, 20.0], 1))
    out = latency_percentiles(rows, "5min")
    assert list(out.columns) == LATENCY_COLUMNS
    first = out[(out["service"] == "pay") & (out["bucket_start"] == pd.Timestamp(T0))].iloc[0]
    assert first["count"] == 100
    assert first["p50_ms"] == pytest.approx(50.5)
    assert first["p99_ms"] == pytest.approx(99.01)
    assert first["error_rate"] == pytest.approx(0.1)
    second = out[(out["service"] == "pay") &
                 (out["bucket_start"] == pd.Timestamp(T0 + timedelta(minutes=5)))].iloc[0]
    assert second["p99_ms"] == 500.0 and second["error_rate"] == 0.0
    inv = out[out["service"] == "inv"].iloc[0]
    assert inv["account_id"] == "2" * 12 and inv["p50_ms"] == 15.0


def test_latency_counts_entries_only() -> None:
    out = latency_percentiles(order_flow(), "1h")
    assert dict(zip(out["service"], out["count"], strict=True)) == \
        {"bus": 1, "orders": 1, "web": 1}
    assert dict(zip(out["service"], out["p50_ms"], strict=True))["orders"] == 100.0


@pytest.mark.parametrize("freq", ["often", "1M", "", "0min"])
def test_a_bad_bucket_is_a_clear_error(freq: str) -> None:
    with pytest.raises(ValueError, match=r"latency bucket .* must be"):
        latency_percentiles(order_flow(), freq)
