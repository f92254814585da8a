"""One trace's waterfall (dashboard.waterfall) on a tmp store holding the simulator's order
flows."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from dashboard import trace_criteria as criteria
from dashboard import traces_search as tsearch
from dashboard import waterfall as wf
from dashboard.filters import Filters
from orgscope.store import Store
from orgscope.traces.stitch import stitch
from testkit.traces_sample import FLOW_ACCOUNTS, SLOW_SERVICE, sample_spans, sample_window

PAYMENTS = FLOW_ACCOUNTS["payment-service"]
ORDERS = FLOW_ACCOUNTS["order-processing"]


def test_waterfall_of_the_slowest_trace_crosses_five_accounts_in_parent_order(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    store, _ = traced
    results = tsearch.search_traces(store, Filters(), criteria.TraceSearch(), sample_window(now))
    slowest = results.iloc[0]
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


def test_each_claimant_of_a_span_id_shows_under_its_own_account(now: datetime) -> None:
    """An account forging another's span ids shows beside it, never in its place."""
    spans = sample_spans(now, 1)
    parents = set(zip(spans["trace_id"], spans["parent_id"], strict=True))
    with_children = pd.Series([(trace, span) in parents for trace, span in
                               zip(spans["trace_id"], spans["span_id"], strict=True)],
                              index=spans.index)
    candidates = spans[(spans["account_id"] == ORDERS) & with_children]
    assert len(candidates), "the sample's order flow has order-processing spans with children"
    victim = candidates.iloc[0]
    first = spans[spans["trace_id"] == victim["trace_id"]]
    forged = victim.copy()
    forged["account_id"], forged["name"] = "999999999999", "impostor"
    forged["end"] = victim["end"] + pd.Timedelta(seconds=5)
    with_forgery = pd.concat([first, forged.to_frame().T], ignore_index=True)
    rows = wf.waterfall(with_forgery.astype(first.dtypes), str(victim["trace_id"]), {})
    claimants = rows[rows["span_id"] == victim["span_id"]].set_index("account_id")
    assert sorted(claimants.index) == sorted([ORDERS, "999999999999"])
    assert set(claimants["break"]) == {"span-id-conflict"}
    assert "another account sent a span" in str(claimants.loc[ORDERS, "hover"])
    children = rows[rows["parent_id"] == victim["span_id"]]
    assert len(children) and (children["break"].isna()
                              | (children["break"] == "ambiguous-parent")).all()
    own_children = children[children["account_id"] == ORDERS]
    assert not own_children["crossing"].any()
    victim_row = int(claimants.loc[ORDERS, "row"])
    assert (own_children["row"] > victim_row).all()
