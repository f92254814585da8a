"""The xray collector: windows, sampling, segment parsing, and a run against a fake client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collectors.xray import (
    XRAY,
    XrayCollectorConfig,
    collect_xray,
    find_traceparent,
    id_batches,
    read_window,
    sample_ids,
    segment_rows,
    trace_rows,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import SPANS

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TRACE = "1-5759e988-bd862e3fe1be46a994272793"
W3C = "5759e988bd862e3fe1be46a994272793"
TP = f"00-{W3C}-53995c3f42cd8ad8-01"
T = NOW.timestamp()


def segment(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "70de5b6f19ff9a0a", "trace_id": TRACE, "name": "order-processing",
        "origin": "AWS::Lambda::Function", "start_time": T, "end_time": T + 0.25,
        "annotations": {"traceparent": TP, "event_rule": "r"},
        "http": {"request": {"method": "POST", "url": "https://x/orders"},
                 "response": {"status": 502}},
        "fault": True,
        "subsegments": [
            {"id": "70de5b6f19ff9a0b", "name": "payment-service", "start_time": T + 0.01,
             "end_time": T + 0.1, "throttle": True, "error": True,
             "subsegments": [{"id": "70de5b6f19ff9a0c", "name": "DynamoDB",
                              "start_time": T + 0.02, "end_time": T + 0.05}]},
            {"id": "bad", "name": "broken", "start_time": T},
        ],
    }
    doc.update(extra)
    return doc


def test_windows() -> None:
    settings = XrayCollectorConfig()
    assert read_window(NOW, None, settings) == Window(NOW - timedelta(hours=1), NOW)
    mark = NOW - timedelta(minutes=1)
    assert read_window(NOW, mark, settings) == Window(mark - timedelta(minutes=2), NOW)
    assert read_window(NOW, NOW - timedelta(days=3), settings) == \
        Window(NOW - timedelta(hours=1), NOW)
    assert read_window(NOW, NOW + timedelta(hours=2), settings) is None


def test_sampling_and_batches() -> None:
    ids = [f"1-{i:08x}-{'a' * 24}" for i in range(100)]
    assert sample_ids(ids + ids[:5], 500) == ids
    sampled = sample_ids(list(reversed(ids)), 10)
    assert sampled == ids[::10]
    assert [len(b) for b in id_batches(ids[:12])] == [5, 5, 2]


def test_segment_and_subsegments_become_spans() -> None:
    rows = segment_rows(segment(parent_id="1111222233334444"), account_id="777777777777",
                        region="us-east-1")
    assert [r["span_id"] for r in rows] == ["70de5b6f19ff9a0a", "70de5b6f19ff9a0b",
                                            "70de5b6f19ff9a0c"]  # the bad one skipped
    top, call, db = rows
    assert top["trace_id"] == W3C and top["parent_id"] == "1111222233334444"
    assert (top["http_method"], top["http_url"], top["http_status"]) == \
        ("POST", "https://x/orders", 502)
    assert top["fault"] and not top["error"] and top["duration_ms"] == pytest.approx(250, 0.01)
    assert top["traceparent"] == TP and json.loads(top["annotations"])["event_rule"] == "r"
    assert call["parent_id"] == top["span_id"] and db["parent_id"] == call["span_id"]
    assert call["service"] == db["service"] == "order-processing"
    assert call["throttle"] and call["error"] and not call["fault"]
    assert db["traceparent"] is None and db["annotations"] is None
    assert {r["source"] for r in rows} == {"xray"} and {r["linked_from"] for r in rows} == {None}


def test_traceparent_in_metadata_and_malformed_ones() -> None:
    assert find_traceparent({"metadata": {"event": {"traceparent": TP.upper()}}}) == TP
    assert find_traceparent({"annotations": {"traceparent": "00-x"}}) is None
    assert find_traceparent({}) is None


def test_bad_documents_are_skipped_the_rest_kept() -> None:
    traces = [{"Id": TRACE, "Segments": [
        {"Id": "a", "Document": "{not json"},
        {"Id": "b", "Document": json.dumps({"id": "70de5b6f19ff9a0d", "trace_id": "nope",
                                            "name": "x", "start_time": T})},
        {"Id": "c", "Document": json.dumps([1])},
        {"Id": "d", "Document": json.dumps(segment(subsegments=[]))},
    ]}]
    rows = trace_rows(traces, account_id="777777777777", region="us-east-1")
    assert [r["span_id"] for r in rows] == ["70de5b6f19ff9a0a"]


class FakeXray:
    """GetTraceSummaries in two pages; BatchGetTraces answering any ids."""

    def __init__(self, count: int) -> None:
        self.ids = [f"1-{int(T) + i:08x}-{'b' * 24}" for i in range(count)]
        self.summary_calls: list[dict[str, Any]] = []
        self.batches: list[list[str]] = []

    def get_trace_summaries(self, **params: Any) -> dict[str, Any]:
        self.summary_calls.append(params)
        half = len(self.ids) // 2
        if "NextToken" not in params:
            return {"TraceSummaries": [{"Id": i} for i in self.ids[:half]], "NextToken": "p2"}
        return {"TraceSummaries": [{"Id": i} for i in self.ids[half:]]}

    def batch_get_traces(self, TraceIds: list[str]) -> dict[str, Any]:
        assert 1 <= len(TraceIds) <= 5
        self.batches.append(TraceIds)
        return {"Traces": [{"Id": i, "Segments": [{"Id": "s", "Document": json.dumps(
            segment(trace_id=i, id=f"{n:016x}", subsegments=[]))}]}
            for n, i in enumerate(TraceIds, start=len(self.batches) * 10)]}


def context(fake: FakeXray, settings: XrayCollectorConfig, watermark: datetime | None = None
            ) -> CollectContext:
    return CollectContext(account=Account("777777777777", "order-processing", "orders"),
                          region="us-east-1", window=Window(NOW, NOW), collected_at=NOW,
                          client_factory=lambda service: fake, settings=settings,
                          watermark=watermark)


def test_a_run_pages_summaries_batches_ids_and_caps_traces() -> None:
    fake = FakeXray(23)
    collected = collect_xray(context(fake, XrayCollectorConfig(max_traces_per_run=12),
                                     NOW - timedelta(minutes=5)))
    assert collected.watermark == NOW
    assert fake.summary_calls[0]["StartTime"] == NOW - timedelta(minutes=7)
    assert fake.summary_calls[0]["TimeRangeType"] == "TraceId"
    assert len(fake.summary_calls) == 2 and fake.summary_calls[1]["NextToken"] == "p2"
    assert [len(b) for b in fake.batches] == [5, 5, 2]
    spans = collected.frames["spans"]
    assert len(spans) == 12
    SPANS.to_table(spans)  # matches the dataset
    assert XRAY.iam_actions == ("xray:BatchGetTraces", "xray:GetTraceSummaries")


def test_an_empty_window_keeps_the_watermark() -> None:
    fake = FakeXray(0)
    mark = NOW + timedelta(hours=2)
    collected = collect_xray(context(fake, XrayCollectorConfig(), mark))
    assert collected.watermark == mark and not fake.summary_calls
    assert list(collected.frames["spans"].columns) == SPANS.columns
