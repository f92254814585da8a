"""Stitching spans of many accounts: re-links, breaks, missing parents, skew, duplicates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.datasets import SPANS
from orgscope.traces.stitch import STITCHED_COLUMNS, stitch

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRODUCER = "6b07c2f18fbde02ac9fcf6e7da8c2081"
CONSUMER = "6b07c2f28fbde02ac9fcf6e7da8c2082"


def span(trace: str, span_id: str, parent: str | None, *, ms: float, account: str = "1",
         annotations: dict[str, Any] | None = None, end_ms: float | None = 10.0,
         service: str = "svc") -> dict[str, Any]:
    start = T0 + timedelta(milliseconds=ms)
    return {
        "trace_id": trace, "span_id": span_id, "parent_id": parent,
        "account_id": account * 12, "region": "us-east-1", "service": service,
        "name": span_id, "origin": None, "start": start,
        "end": None if end_ms is None else start + timedelta(milliseconds=end_ms),
        "duration_ms": end_ms, "fault": False, "error": False, "throttle": False,
        "http_method": None, "http_url": None, "http_status": None,
        "annotations": json.dumps(annotations) if annotations else None,
        "traceparent": (annotations or {}).get("traceparent"), "source": "xray",
        "linked_from": None,
    }


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    built = pd.DataFrame(list(rows), columns=SPANS.columns)
    SPANS.to_table(built)  # the rows are valid spans
    return built


def sid(n: int) -> str:
    return f"{n:016x}"


def test_one_trace_across_accounts_in_parent_order_despite_clock_skew() -> None:
    rows = frame(
        span(PRODUCER, sid(1), None, ms=0, account="1"),
        span(PRODUCER, sid(2), sid(1), ms=5, account="1"),
        # account 3's clock is behind: its span "starts" before its parent
        span(PRODUCER, sid(4), sid(3), ms=1, account="3"),
        span(PRODUCER, sid(3), sid(2), ms=8, account="2"),
    )
    out = stitch(rows)
    assert list(out.columns) == STITCHED_COLUMNS
    assert list(out["span_id"]) == [sid(1), sid(2), sid(3), sid(4)]
    assert list(out["depth"]) == [0, 1, 2, 3]
    assert out["break"].isna().all() and out["linked_from"].isna().all()


def test_siblings_by_start_and_traces_by_first_root() -> None:
    other = "7" * 32
    out = stitch(frame(
        span(other, sid(9), None, ms=50),
        span(PRODUCER, sid(1), None, ms=0),
        span(PRODUCER, sid(3), sid(1), ms=20),
        span(PRODUCER, sid(2), sid(1), ms=10),
    ))
    assert list(out["span_id"]) == [sid(1), sid(2), sid(3), sid(9)]


def test_broken_trace_id_is_relinked_by_traceparent() -> None:
    traceparent = f"00-{PRODUCER}-{sid(2)}-01"
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0, service="web"),
        span(PRODUCER, sid(2), sid(1), ms=5, service="web"),
        span(CONSUMER, sid(10), None, ms=100, service="orders",
             annotations={"traceparent": traceparent, "event_rule": "r"}),
        span(CONSUMER, sid(11), sid(10), ms=110, service="payments"),
    ))
    assert set(out["trace_id"]) == {PRODUCER}
    assert list(out["span_id"]) == [sid(1), sid(2), sid(10), sid(11)]
    consumer = out.set_index("span_id").loc[sid(10)]
    assert consumer["parent_id"] == sid(2) and consumer["linked_from"] == sid(2)
    assert consumer["original_trace_id"] == CONSUMER and consumer["depth"] == 2
    assert out.set_index("span_id").loc[sid(11), "original_trace_id"] == CONSUMER
    assert out["break"].isna().all()


def test_chained_relinks_follow_to_the_first_producer() -> None:
    third = "8" * 32
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0),
        span(CONSUMER, sid(10), None, ms=10,
             annotations={"traceparent": f"00-{PRODUCER}-{sid(1)}-01"}),
        span(third, sid(20), None, ms=20,
             annotations={"traceparent": f"00-{CONSUMER}-{sid(10)}-01"}),
    ))
    assert set(out["trace_id"]) == {PRODUCER}
    assert list(out["depth"]) == [0, 1, 2]


def test_breaks_are_marked() -> None:
    out = stitch(frame(
        # an event consumer without traceparent (scheduled or replayed event)
        span(CONSUMER, sid(10), None, ms=0, annotations={"event_rule": "r"}),
        # a traceparent naming a producer span that was not collected
        span("9" * 32, sid(20), None, ms=1,
             annotations={"traceparent": f"00-{PRODUCER}-{sid(99)}-01"}),
        # a malformed traceparent
        span("a" * 32, sid(30), None, ms=2, annotations={"traceparent": "00-nope"}),
        # a parent id that is not among the spans
        span("b" * 32, sid(40), sid(41), ms=3),
        span("b" * 32, sid(42), sid(40), ms=4),
        # an ordinary origin: no break
        span("c" * 32, sid(50), None, ms=5),
    )).set_index("span_id")
    assert out.loc[sid(10), "break"] == "no-traceparent"
    assert out.loc[sid(20), "break"] == "producer-missing"
    assert out.loc[sid(20), "trace_id"] == "9" * 32
    assert out.loc[sid(30), "break"] == "bad-traceparent"
    assert out.loc[sid(40), "break"] == "missing-parent"
    assert out.loc[sid(40), "depth"] == 0 and out.loc[sid(42), "depth"] == 1
    assert out["break"].isna()[sid(42)] and out["break"].isna()[sid(50)]


def test_a_producer_recording_the_context_it_injects_is_no_break() -> None:
    """A producer that annotates its own span with the traceparent it puts into PutEvents:
    the context names the span itself, which is the trace's origin, not a lost producer."""
    own = f"00-{PRODUCER}-{sid(1)}-01"
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0, annotations={"traceparent": own}),
        span(CONSUMER, sid(10), None, ms=100, annotations={"traceparent": own,
                                                          "event_rule": "r"}),
        # the same on a span whose parent was not collected: that is still a missing parent
        span("d" * 32, sid(60), sid(61), ms=5,
             annotations={"traceparent": f"00-{'d' * 32}-{sid(60)}-01"}),
    )).set_index("span_id")
    assert out["break"].isna()[sid(1)] and out["break"].isna()[sid(10)]
    assert out.loc[sid(10), "trace_id"] == PRODUCER and out.loc[sid(10), "parent_id"] == sid(1)
    assert out.loc[sid(60), "break"] == "missing-parent"


def test_a_missing_parent_is_bridged_by_the_traceparent() -> None:
    """The bus account was not collected: the consumer's parent (the bus's rule span) is
    missing, but its traceparent names the producer's span in the same trace."""
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0),
        span(PRODUCER, sid(10), sid(5), ms=10,
             annotations={"traceparent": f"00-{PRODUCER}-{sid(1)}-01"}),
    )).set_index("span_id")
    assert out.loc[sid(10), "parent_id"] == sid(1) and out["break"].isna()[sid(10)]


def test_duplicates_keep_one_row_the_finished_one() -> None:
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0),
        span(PRODUCER, sid(2), sid(1), ms=5, end_ms=None),  # in progress
        span(PRODUCER, sid(2), sid(1), ms=5, end_ms=30),
        span(PRODUCER, sid(2), sid(1), ms=5, end_ms=20),
    ))
    assert list(out["span_id"]) == [sid(1), sid(2)]
    assert out.loc[1, "duration_ms"] == 30


def test_parent_loops_do_not_hang_and_are_marked() -> None:
    out = stitch(frame(
        span(PRODUCER, sid(1), sid(2), ms=0),
        span(PRODUCER, sid(2), sid(1), ms=5),
    ))
    assert sorted(out["span_id"]) == [sid(1), sid(2)]
    assert [b if isinstance(b, str) else None for b in out["break"]] == ["cycle", None]
    assert list(out["depth"]) == [0, 1]


def test_empty_input() -> None:
    assert list(stitch(SPANS.empty_frame()).columns) == STITCHED_COLUMNS


def test_ten_thousand_spans_of_two_thousand_traces_stitch_whole() -> None:
    """Correct at a realistic size (its speed is bench/'s business, not a test's)."""
    rows = []
    for t in range(2000):
        trace = f"{t:032x}"
        rows.append(span(trace, sid(t * 10 + 1), None, ms=t))
        for k in range(2, 6):
            rows.append(span(trace, sid(t * 10 + k), sid(t * 10 + k - 1), ms=t + k))
    out = stitch(frame(*rows))
    assert len(out) == 10_000 and out["depth"].max() == 4


def test_a_span_another_account_sends_under_the_same_ids_replaces_nothing() -> None:
    """Account 2 sends a span with the ids of account 1's span and a later end: both are
    kept and marked, and account 1's child stays under account 1's span."""
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0, account="1"),
        span(PRODUCER, sid(2), sid(1), ms=5, account="1", end_ms=10),
        span(PRODUCER, sid(3), sid(2), ms=6, account="1", service="child"),
        span(PRODUCER, sid(2), sid(1), ms=5, account="2", end_ms=900, service="impostor"),
    ))
    claimed = out[out["span_id"] == sid(2)]
    assert sorted(claimed["account_id"]) == ["1" * 12, "2" * 12]
    assert set(claimed["break"]) == {"span-id-conflict"}
    assert set(claimed["duration_ms"]) == {10, 900}
    child = out.set_index("span_id").loc[sid(3)]
    rows = list(out["span_id"])
    own = out[(out["span_id"] == sid(2)) & (out["account_id"] == "1" * 12)].index[0]
    assert rows.index(sid(3)) == own + 1 and child["depth"] == 2
    assert pd.isna(child["break"])


def test_a_child_of_a_span_id_two_other_accounts_claim_is_a_root_marked_ambiguous() -> None:
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0, account="1"),
        span(PRODUCER, sid(1), None, ms=1, account="2"),
        span(PRODUCER, sid(5), sid(1), ms=5, account="3"),
    )).set_index("span_id")
    assert out.loc[sid(5), "break"] == "ambiguous-parent"
    assert out.loc[sid(5), "depth"] == 0


def test_one_accounts_duplicates_still_keep_one_row() -> None:
    out = stitch(frame(
        span(PRODUCER, sid(1), None, ms=0, account="1", end_ms=None),
        span(PRODUCER, sid(1), None, ms=0, account="1", end_ms=40),
    ))
    assert len(out) == 1 and out.loc[0, "duration_ms"] == 40 and pd.isna(out.loc[0, "break"])
