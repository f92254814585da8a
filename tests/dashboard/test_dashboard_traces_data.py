"""The Traces page's data layer on a tmp store holding the simulator's order flows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dashboard_sample import fill_org_store
from traces_sample import FLOW_ACCOUNTS, SLOW_SERVICE, fill_traces, sample_spans

from dashboard import deeplinks as links
from dashboard import service_graph
from dashboard import trace_criteria as criteria
from dashboard import trace_latency as lat
from dashboard import traces_search as tsearch
from dashboard import waterfall as wf
from dashboard.filters import Filters
from orgscope.store import Store
from orgscope.traces.stitch import stitch

PAYMENTS = FLOW_ACCOUNTS["payment-service"]
ORDERS = FLOW_ACCOUNTS["order-processing"]


@pytest.fixture
def traced(org_store: Store, now: datetime) -> tuple[Store, pd.DataFrame]:
    return org_store, fill_traces(org_store, now)


def _window(now: datetime) -> criteria.Window:
    """A window holding every sample trace (the sample covers the hour before ``now``)."""
    return criteria.Window(now - timedelta(minutes=90), now + timedelta(minutes=1))


# --- presence ----------------------------------------------------------------------------------


def test_presence_tells_no_spans_from_not_stitched_from_ready(empty_store: Store,
                                                              now: datetime) -> None:
    assert tsearch.presence(empty_store) == tsearch.Presence(spans=False, traces=False,
                                                   traces_dataset=True)
    empty_store.write("spans", sample_spans(now, 5), "spans-only")
    assert tsearch.presence(empty_store) == tsearch.Presence(spans=True, traces=False,
                                                   traces_dataset=True)
    fill_traces(empty_store, now, 5)
    assert tsearch.presence(empty_store).traces


# --- search ------------------------------------------------------------------------------------


def test_search_by_minimum_duration_is_slowest_first_and_counts_every_match(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, summaries = traced
    threshold = float(summaries["duration_ms"].median())
    found = tsearch.search_traces(store, Filters(), criteria.TraceSearch(min_duration_ms=threshold),
                             _window(now), limit=5)
    expected = summaries[summaries["duration_ms"] >= threshold]
    assert len(found) == 5
    assert int(found["matches"].iloc[0]) == len(expected)
    assert list(found["duration_ms"]) == sorted(expected["duration_ms"], reverse=True)[:5]
    assert isinstance(found["member_trace_ids"].iloc[0], list)


def test_search_criteria_combine(traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, summaries = traced
    window = _window(now)

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
                             _window(now))
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
    again = tsearch.search_traces(store, Filters(), criteria.TraceSearch(), _window(now))
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


# --- one trace ---------------------------------------------------------------------------------


def test_waterfall_of_the_slowest_trace_crosses_five_accounts_in_parent_order(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, _ = traced
    slowest = tsearch.search_traces(store, Filters(), criteria.TraceSearch(), _window(now)).iloc[0]
    spans = wf.trace_spans(store, slowest["member_trace_ids"], slowest["start"],
                           slowest["end"])
    rows = wf.waterfall(spans, slowest["trace_id"], {PAYMENTS: "payment-service"})
    assert set(rows["account_id"]) == set(FLOW_ACCOUNTS.values())
    assert len(rows) == int(slowest["span_count"])
    position = dict(zip(rows["span_id"], rows["row"], strict=True))
    for row in rows.to_dict("records"):
        if isinstance(row["parent_id"], str) and row["parent_id"] in position:
            assert position[row["parent_id"]] < row["row"]
    assert rows["row"].tolist() == list(range(len(rows)))
    assert rows.loc[0, "depth"] == 0 and rows.loc[0, "offset_ms"] == 0
    assert rows["label"].iloc[1].startswith("\u00a0\u00a0")
    # each hop into another account is a crossing: web -> bus -> orders -> payments, inventory
    assert int(rows["crossing"].sum()) == 4
    slow = rows[(rows["service"] == SLOW_SERVICE) & (rows["account_id"] == PAYMENTS)]
    assert slow["account"].iloc[0] == "payment-service"
    assert "payment-service" in slow["hover"].iloc[0]


def test_a_trace_broken_at_the_bus_shows_the_relink(traced: tuple[Store, pd.DataFrame],
                                                    now: datetime) -> None:
    store, summaries = traced
    joined = summaries[summaries["member_trace_ids"].map(len) > 1].iloc[0]
    spans = wf.trace_spans(store, joined["member_trace_ids"], joined["start"], joined["end"])
    assert spans["trace_id"].nunique() == 2
    rows = wf.waterfall(spans, joined["trace_id"], {})
    relinked = rows[rows["relinked"]]
    assert relinked["service"].tolist() == ["order-processing"]
    assert "re-linked" in relinked["hover"].iloc[0]
    assert rows["break"].isna().all()


def test_a_missing_parent_is_marked_as_a_break(now: datetime) -> None:
    spans = stitch(sample_spans(now, 1))
    first = spans[spans["trace_id"] == spans["trace_id"].iloc[0]]
    # the producer's PutEvents subsegment was not collected: the bus segment has no parent and
    # the consumer's traceparent names nothing
    lost = first[first["name"] != "EventBridge"]
    rows = wf.waterfall(lost[[c for c in lost if c not in ("original_trace_id", "depth",
                                                           "break")]],
                        str(first["trace_id"].iloc[0]), {})
    broken = rows[rows["break"].notna()].set_index("service")
    assert broken.loc["central-bus", "break"] == "missing-parent"
    assert "parent span was not collected" in str(broken.loc["central-bus", "hover"])


def test_status_of_a_span() -> None:
    assert wf.status_of({"fault": True, "error": True}) == "fault"
    assert wf.status_of({"throttle": True, "error": True}) == "throttle"
    assert wf.status_of({"error": True}) == "error"
    assert wf.status_of({}) == "ok"


# --- service map and latency -----------------------------------------------------------------


def test_service_map_shows_where_the_latency_starts(traced: tuple[Store, pd.DataFrame],
                                                    now: datetime) -> None:
    store, summaries = traced
    graph = service_graph.service_map(store, Filters(), _window(now))
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
    graph = service_graph.service_map(org_store, Filters(), _window(now), max_traces=10)
    assert not graph.nodes["rose"].any()
    assert graph.traces == 10 and graph.matched > 10
    narrowed = service_graph.service_map(org_store, Filters(account_ids=("222222222222",)),
                              _window(now))
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


def test_latency_percentiles_per_service_in_buckets(traced: tuple[Store, pd.DataFrame],
                                                    now: datetime) -> None:
    store, _ = traced
    frame = lat.latency(store, Filters(regions=("us-east-1",)), _window(now))
    assert set(frame["service"]) == set(FLOW_ACCOUNTS)
    assert frame["bucket_start"].diff().dropna().min() >= timedelta(minutes=5) or \
        frame["bucket_start"].nunique() > 1
    latest = frame[frame["bucket_start"] == frame["bucket_start"].max()].set_index("service")
    assert latest.loc[SLOW_SERVICE, "p99_ms"] > 700
    assert lat.latency(store, Filters(teams=("mobile",)), _window(now)).empty
    assert lat.latency_freq(timedelta(hours=1)) == "5min"
    assert lat.latency_freq(timedelta(days=7)) == "180min"


def test_latency_in_duckdb_equals_the_view_over_every_span_of_the_window(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    from orgscope.traces import views

    store, _ = traced
    window = _window(now)
    spans = store.query("SELECT * EXCLUDE (date) FROM spans WHERE start >= ? AND start < ?",
                        [window.since, window.until])
    expected = views.latency_percentiles(spans, lat.latency_freq(window.length))
    got = lat.latency(store, Filters(), window)
    assert list(got.columns) == views.LATENCY_COLUMNS
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=2e-3,
                                  check_dtype=False)


def test_latency_covers_the_whole_range_however_many_spans(empty_store: Store,
                                                           now: datetime) -> None:
    """It read the 200,000 most recent spans and computed in pandas: on a busy organization
    (minutes of spans) a 24-hour chart held only its last minutes. Every span now counts."""
    import numpy as np

    from orgscope.datasets import SPANS

    count = 205_000
    window = criteria.Window.last("24h", now)
    starts = (window.since + pd.to_timedelta(np.linspace(0, 86_000, count), unit="s")
              ).floor("ms")
    ids = [f"{i:032x}" for i in range(1, count + 1)]
    frame = pd.DataFrame({
        "trace_id": ids, "span_id": [i[16:] for i in ids], "parent_id": None,
        "account_id": PAYMENTS, "region": "us-east-1", "service": "payment-service",
        "name": "charge", "origin": None, "start": starts, "end": None,
        "duration_ms": np.arange(count) % 100 + 1.0, "fault": False, "error": False,
        "throttle": False, "http_method": None, "http_url": None, "http_status": None,
        "annotations": None, "traceparent": None, "source": "xray", "linked_from": None,
    }, columns=SPANS.columns)
    frame["http_status"] = frame["http_status"].astype("Int64")
    empty_store.write("spans", frame, "busy")
    got = lat.latency(empty_store, Filters(), window)
    assert int(got["count"].sum()) == count
    assert got["bucket_start"].min() <= pd.Timestamp(window.since) + timedelta(minutes=30)


# --- deep links --------------------------------------------------------------------------------


def test_links_round_trip_and_name_accounts() -> None:
    names = {PAYMENTS: "payment-service"}
    window = criteria.Window(datetime(2026, 11, 26, 8, tzinfo=UTC), datetime(2026, 11, 26, 9,
                                                                         tzinfo=UTC))
    link = links.Link(search=criteria.TraceSearch(
        services=("payment-service",), account_ids=(PAYMENTS,), statuses=("fault",),
        min_duration_ms=500, annotations=(("order_id", "ord-1"),)), window=window,
        trace="abc")
    params = links.link_params(link)
    assert params == {"service": "payment-service", "account": PAYMENTS, "status": "fault",
                      "min_ms": "500", "annotation": "order_id=ord-1",
                      "since": "2026-11-26T08:00:00Z", "until": "2026-11-26T09:00:00Z",
                      "trace": "abc"}
    assert links.read_link(params, names) == link
    by_name = links.read_link({"account": ["payment-service"], "service": "a,b"}, names)
    assert by_name.search.account_ids == (PAYMENTS,)
    assert by_name.search.services == ("a", "b")
    assert by_name.window is None


@pytest.mark.parametrize(("params", "message"), [
    ({"account": "nobody"}, "account='nobody'"),
    ({"min_ms": "slow"}, "min_ms='slow'"),
    ({"since": "yesterday"}, "since='yesterday'"),
    ({"until": "2026-11-26T09:00:00Z"}, "needs since="),
    ({"status": "bad"}, "not one of"),
    ({"annotation": "novalue"}, "key=value"),
])
def test_bad_links_say_which_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(criteria.SearchError, match=message):
        links.read_link(params, {})


def test_a_rules_consumers_come_from_the_spans_else_from_its_targets(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, _ = traced
    window = _window(now)
    traced_rule = links.rule_consumers(store, account_id="121212121212", region="us-east-1",
                                    bus="central-bus", rule="order-placed-to-order-processing",
                                    window=window)
    assert traced_rule.to_dict("records") == [{"service": "order-processing",
                                               "account_id": ORDERS}]
    assert links.consumer_link(traced_rule, window) == {
        "service": "order-processing", "account": ORDERS,
        **{k: v for k, v in links.link_params(links.Link(window=window)).items()}}
    untraced = links.rule_consumers(store, account_id="121212121212", region="us-east-1",
                                 bus="central-bus", rule="order-placed-to-inventory",
                                 window=window)
    assert untraced.to_dict("records") == [{"service": None, "account_id": "666666666666"}]
    assert "service" not in links.consumer_link(untraced, window)


def test_empty_store_reads_as_empty_not_as_an_error(org_store: Store, now: datetime) -> None:
    fill_org_store(org_store, now)
    assert tsearch.search_traces(org_store, Filters(), criteria.TraceSearch(), _window(now)).empty
    assert service_graph.service_map(org_store, Filters(), _window(now)).nodes.empty
    assert lat.latency(org_store, Filters(), _window(now)).empty
    assert tsearch.search_choices(org_store, _window(now)) == {"services": [], "accounts": [],
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
