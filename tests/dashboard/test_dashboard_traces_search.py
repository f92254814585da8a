"""Trace search (dashboard.traces_search, dashboard.trace_criteria) on a tmp store holding the
simulator's order flows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard import service_graph
from dashboard import trace_criteria as criteria
from dashboard import trace_latency as lat
from dashboard import traces_search as tsearch
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import fill_org_store
from testkit.traces_sample import FLOW_ACCOUNTS, fill_traces, sample_spans, sample_window

PAYMENTS = FLOW_ACCOUNTS["payment-service"]
ORDERS = FLOW_ACCOUNTS["order-processing"]


def test_presence_tells_no_spans_from_not_stitched_from_ready(empty_store: Store,
                                                              now: datetime) -> None:
    assert tsearch.presence(empty_store) == tsearch.Presence(spans=False, traces=False,
                                                   traces_dataset=True)
    empty_store.write("spans", sample_spans(now, 5), "spans-only")
    assert tsearch.presence(empty_store) == tsearch.Presence(spans=True, traces=False,
                                                   traces_dataset=True)
    fill_traces(empty_store, now, 5)
    assert tsearch.presence(empty_store).traces


def test_search_by_minimum_duration_is_slowest_first_and_counts_every_match(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, summaries = traced
    threshold = float(summaries["duration_ms"].median())
    found = tsearch.search_traces(store, Filters(), criteria.TraceSearch(min_duration_ms=threshold),
                             sample_window(now), limit=5)
    expected = summaries[summaries["duration_ms"] >= threshold]
    assert len(found) == 5
    assert int(found["matches"].iloc[0]) == len(expected)
    assert list(found["duration_ms"]) == sorted(expected["duration_ms"], reverse=True)[:5]
    assert isinstance(found["member_trace_ids"].iloc[0], list)


def test_search_criteria_combine(traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, summaries = traced
    window = sample_window(now)

    def count(search: criteria.TraceSearch, filters: Filters | None = None) -> int:
        found = tsearch.search_traces(store, filters or Filters(), search, window)
        return int(found["matches"].iloc[0]) if len(found) else 0

    everything = len(summaries)
    assert count(criteria.TraceSearch()) == everything
    assert count(criteria.TraceSearch(services=("payment-service",))) == int(
        summaries["services"].map(lambda s: "payment-service" in s).sum())
    assert count(criteria.TraceSearch(account_ids=("222222222222",))) == 0
    assert count(criteria.TraceSearch(account_ids=("222222222222", PAYMENTS))) > 0
    assert count(criteria.TraceSearch(teams=("payments",))) > 0
    assert count(criteria.TraceSearch(statuses=("fault",))) == int((summaries["status"] ==
                                                              "fault").sum())
    order_id = json.loads(summaries["annotations"].iloc[3])["order_id"]
    one = tsearch.search_traces(store, Filters(), criteria.TraceSearch(
        annotations=(("order_id", order_id),)), window)
    assert list(one["trace_id"]) == [summaries["trace_id"].iloc[3]]
    assert count(criteria.TraceSearch(annotations=(("order_id", order_id),
                                             ("event_rule", "nope")))) == 0
    # a key that would be JSON path syntax is only ever a key
    assert count(criteria.TraceSearch(annotations=(("a/b~c.*", "x"),))) == 0
    # the sidebar: accounts and teams narrow to traces touching them, regions through spans
    assert count(criteria.TraceSearch(), Filters(account_ids=("222222222222",))) == 0
    assert count(criteria.TraceSearch(), Filters(teams=("payments",))) > 0
    assert count(criteria.TraceSearch(), Filters(regions=("eu-west-1",))) == 0
    assert count(criteria.TraceSearch(), Filters(regions=("us-east-1",))) == everything


def test_a_region_matches_through_any_member_trace(traced: tuple[Store, pd.DataFrame],
                                                  now: datetime) -> None:
    """The region filter joins each trace's member ids with the spans (it tested one list of
    every trace id in the regions against each trace: quadratic, 7 s at 20,000 traces)."""
    store, summaries = traced
    joined = summaries[summaries["member_trace_ids"].map(len) > 1].iloc[0]
    consumer = str(joined["member_trace_ids"][1])
    moved = store.query("SELECT * EXCLUDE (date) FROM spans WHERE trace_id = ?", [consumer])
    store.write("spans", moved.assign(region="eu-west-1"), "zz-moved")  # only this member
    found = tsearch.search_traces(store, Filters(regions=("eu-west-1",)), criteria.TraceSearch(),
                             sample_window(now))
    assert list(found["trace_id"]) == [joined["trace_id"]]


def test_search_window_and_merged_rows(traced: tuple[Store, pd.DataFrame],
                                       now: datetime) -> None:
    store, summaries = traced
    recent = criteria.Window(now - timedelta(minutes=10), now + timedelta(minutes=1))
    found = tsearch.search_traces(store, Filters(), criteria.TraceSearch(), recent)
    assert set(found["trace_id"]) == set(summaries[summaries["start"] >= recent.since]
                                         ["trace_id"])
    merged = summaries.head(1).assign(merged_into="other", stitched_at=now)
    # a later file: its row wins
    store.write("traces", merged[[*summaries.columns]], "sample-traces-2")
    again = tsearch.search_traces(store, Filters(), criteria.TraceSearch(), sample_window(now))
    assert summaries["trace_id"].iloc[0] not in set(again["trace_id"])


def test_bad_search_input_says_what_is_allowed() -> None:
    with pytest.raises(criteria.SearchError, match="key=value"):
        criteria.parse_annotations("order_id")
    with pytest.raises(criteria.SearchError, match="key=value"):
        criteria.parse_annotations("=x")
    assert criteria.parse_annotations(" a=1  b=x=y ") == (("a", "1"), ("b", "x=y"))
    with pytest.raises(criteria.SearchError, match="not one of ok, error, fault"):
        criteria.TraceSearch(statuses=("broken",))
    with pytest.raises(criteria.SearchError, match=">= 0"):
        criteria.TraceSearch(min_duration_ms=-1)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(criteria.SearchError, match="not after"):
        criteria.Window(start, start)


def test_empty_store_reads_as_empty_not_as_an_error(org_store: Store, now: datetime) -> None:
    fill_org_store(org_store, now)
    window = sample_window(now)
    assert tsearch.search_traces(org_store, Filters(), criteria.TraceSearch(), window).empty
    assert service_graph.service_map(org_store, Filters(), sample_window(now)).nodes.empty
    assert lat.latency(org_store, Filters(), sample_window(now)).empty
    assert tsearch.search_choices(org_store, sample_window(now)) == {"services": [], "accounts": [],
                                                          "teams": []}


def test_presence_with_traces_does_not_read_spans(traced: tuple[Store, pd.DataFrame]) -> None:
    store, _ = traced
    asked: list[str] = []
    query = store.query

    def spy(sql: str, params: list[object] | None = None) -> pd.DataFrame:
        asked.append(sql)
        return query(sql, params)

    store.query = spy  # type: ignore[method-assign]
    assert tsearch.presence(store) == tsearch.Presence(spans=True, traces=True, traces_dataset=True)
    assert not any("FROM spans" in sql for sql in asked)
