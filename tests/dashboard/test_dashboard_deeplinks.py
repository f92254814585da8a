"""Traces page deep links and a rule's consumers (dashboard.deeplinks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from dashboard import deeplinks as links
from dashboard import trace_criteria as criteria
from orgscope.store import Store
from testkit.traces_sample import FLOW_ACCOUNTS, sample_window

PAYMENTS = FLOW_ACCOUNTS["payment-service"]
ORDERS = FLOW_ACCOUNTS["order-processing"]


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
    window = sample_window(now)
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
