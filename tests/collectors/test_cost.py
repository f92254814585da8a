"""The cost collector without AWS: request shapes, windows, pages, parsing, change detection."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from collectors.cost import (
    CostCollectorConfig,
    add_months,
    changed_days,
    collect_cost,
    detail_request,
    fetch,
    history_start,
    open_from,
    page_request,
    pairs_request,
    parse_results,
    read_window,
    tag_value,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import COST_DAILY

SETTINGS = CostCollectorConfig()


def _group(keys: list[str], amount: str, quantity: str | None = None) -> dict[str, Any]:
    metrics: dict[str, Any] = {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}
    if quantity is not None:
        metrics["UsageQuantity"] = {"Amount": quantity, "Unit": "GB"}
    return {"Keys": keys, "Metrics": metrics}


def _period(day: str, groups: list[dict[str, Any]], estimated: bool = False) -> dict[str, Any]:
    end = date.fromordinal(date.fromisoformat(day).toordinal() + 1).isoformat()
    return {"TimePeriod": {"Start": day, "End": end}, "Total": {}, "Groups": groups,
            "Estimated": estimated}


class FakeCostExplorer:
    """Answers GetCostAndUsage from canned pages keyed by the exact request body."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def get_cost_and_usage(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        return self.answers.get(json.dumps(params), {"ResultsByTime": []})


# --- requests --------------------------------------------------------------------------------


def test_pairs_request_groups_by_account_and_tag_in_a_fixed_key_order() -> None:
    request = pairs_request(date(2026, 11, 1), date(2026, 11, 27), "Team")
    assert list(request) == ["TimePeriod", "Granularity", "Metrics", "GroupBy"]
    assert request["TimePeriod"] == {"Start": "2026-11-01", "End": "2026-11-27"}
    assert request["Granularity"] == "DAILY" and request["Metrics"] == ["UnblendedCost"]
    assert request["GroupBy"] == [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                                  {"Type": "TAG", "Key": "Team"}]


def test_detail_request_filters_one_pair_and_groups_by_service_and_usage_type() -> None:
    tagged = detail_request(date(2026, 11, 1), date(2026, 11, 27), "Team", "777777777777",
                            "orders")
    assert list(tagged) == ["TimePeriod", "Granularity", "Filter", "Metrics", "GroupBy"]
    account, tag = tagged["Filter"]["And"]
    assert account == {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": ["777777777777"]}}
    assert tag == {"Tags": {"Key": "Team", "Values": ["orders"], "MatchOptions": ["EQUALS"]}}
    assert tagged["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"},
                                 {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]
    untagged = detail_request(date(2026, 11, 1), date(2026, 11, 27), "Team", "777777777777", "")
    assert untagged["Filter"]["And"][1] == {"Tags": {"Key": "Team", "MatchOptions": ["ABSENT"]}}
    # cost and usage: a line's unit price is what the flow allocation charges by
    assert tagged["Metrics"] == untagged["Metrics"] == ["UnblendedCost", "UsageQuantity"]


def test_usage_quantities_are_read_and_a_bad_one_is_null() -> None:
    results = [_period("2026-11-01", [
        _group(["EC2 - Other", "NatGateway-Bytes"], "4.5", "100.0"),
        _group(["AWS Lambda", "Request"], "0.2", "not-a-number"),
        _group(["AWS Lambda", "Lambda-GB-Second"], "1.25"),
        _group(["Amazon Simple Queue Service", "Requests-Tier1"], "0.4", "NaN"),
    ])]
    groups = parse_results(results, "test")
    assert [(g.keys[1], g.amount, g.quantity) for g in groups] == [
        ("NatGateway-Bytes", 4.5, 100.0), ("Request", 0.2, None),
        ("Lambda-GB-Second", 1.25, None), ("Requests-Tier1", 0.4, None)]


def test_page_request_adds_the_token_last_and_only_when_there_is_one() -> None:
    request = pairs_request(date(2026, 11, 1), date(2026, 11, 2), "Team")
    assert page_request(request, None) == request
    paged = page_request(request, "tok")
    assert list(paged)[-1] == "NextPageToken" and paged["NextPageToken"] == "tok"
    assert "NextPageToken" not in request


# --- windows ---------------------------------------------------------------------------------


def test_month_arithmetic() -> None:
    assert add_months(date(2026, 1, 20), -1) == date(2025, 12, 1)
    assert add_months(date(2026, 11, 5), 2) == date(2027, 1, 1)
    assert history_start(date(2026, 11, 26), 13) == date(2025, 11, 1)
    assert history_start(date(2026, 11, 26), 1) == date(2026, 11, 1)


def test_previous_month_stays_open_until_the_bill_is_final() -> None:
    assert open_from(date(2026, 11, 5), 5) == date(2026, 10, 1)
    assert open_from(date(2026, 11, 6), 5) == date(2026, 11, 1)
    assert open_from(date(2026, 1, 2), 5) == date(2025, 12, 1)


def test_first_run_reads_the_whole_history_later_runs_only_open_days() -> None:
    today = date(2026, 11, 26)
    assert read_window(today, SETTINGS, None) == (date(2025, 11, 1), date(2026, 11, 27))
    watermark = date(2026, 11, 1)
    assert read_window(today, SETTINGS, watermark) == (date(2026, 11, 1), date(2026, 11, 27))
    # The watermark set early in the month (previous month open) reads it once more, final.
    assert read_window(today, SETTINGS, date(2026, 10, 1))[0] == date(2026, 10, 1)
    # A watermark ahead of what can change (settings changed) is not trusted...
    assert read_window(date(2026, 11, 3), SETTINGS, watermark)[0] == date(2026, 10, 1)
    # ...and one older than the history kept is clamped to it.
    assert read_window(today, SETTINGS, date(2020, 1, 1))[0] == date(2025, 11, 1)


# --- pages and parsing -----------------------------------------------------------------------


def test_fetch_follows_every_page_one_call_each() -> None:
    request = pairs_request(date(2026, 11, 1), date(2026, 11, 4), "Team")
    pages = [{"ResultsByTime": [_period(f"2026-11-0{i + 1}", [])],
              "NextPageToken": f"t{i + 1}"} for i in range(3)]
    del pages[-1]["NextPageToken"]
    answers = {json.dumps(page_request(request, None if i == 0 else f"t{i}")): page
               for i, page in enumerate(pages)}
    ce = FakeCostExplorer(answers)
    assert list(fetch(ce, request, "test")) == pages
    assert [c.get("NextPageToken") for c in ce.calls] == [None, "t1", "t2"]


def test_fetch_stops_on_a_repeated_token() -> None:
    class Looping:
        def get_cost_and_usage(self, **_: Any) -> dict[str, Any]:
            return {"ResultsByTime": [], "NextPageToken": "same"}

    with pytest.raises(RuntimeError, match="repeated page token"):
        list(fetch(Looping(), {"GroupBy": []}, "test"))


def test_bad_groups_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    results = [
        _period("2026-11-01", [
            _group(["AWS Lambda", "Lambda-GB-Second"], "1.25"),
            _group(["only-one-key"], "2"),
            _group(["AWS Lambda", "Request"], "not-a-number"),
            {"Keys": ["EC2 - Other", "NatGateway-Hours"], "Metrics": {}},
        ], estimated=True),
        {"TimePeriod": {"Start": "garbage"}, "Groups": [_group(["a", "b"], "1")]},
    ]
    with caplog.at_level(logging.WARNING, logger="collectors.cost"):
        groups = parse_results(results, "test")
    assert [(g.day, g.keys, g.amount, g.estimated) for g in groups] == [
        (date(2026, 11, 1), ("AWS Lambda", "Lambda-GB-Second"), 1.25, True)]
    assert sum("skipped" in r.message for r in caplog.records) == 4


def test_tag_groups_name_the_value_and_untagged_is_empty() -> None:
    assert tag_value("Team$orders", "Team") == "orders"
    assert tag_value("Team$", "Team") == ""
    with pytest.raises(ValueError):
        tag_value("Owner$x", "Team")


# --- change detection ------------------------------------------------------------------------


def _rows(day: date, amount: float, estimated: bool = False) -> list[dict[str, Any]]:
    collected = datetime(2026, 11, 26, tzinfo=UTC)
    return [{"date": day, "account_id": "111111111111", "team_tag": "customer-web",
             "service": "AWS Lambda", "usage_type": "Lambda-GB-Second", "amount": amount,
             "currency": "USD", "estimated": estimated, "collected_at": collected}]


def test_only_days_whose_numbers_changed_are_written_again() -> None:
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    stored = pd.DataFrame(_rows(d1, 1.0) + _rows(d2, 2.0) + _rows(d3, 3.0, True))
    stored["date"] = pd.to_datetime(stored["date"])  # as DuckDB hands it back
    fresh = pd.DataFrame(_rows(d1, 1.0) + _rows(d2, 2.5) + _rows(d3, 3.0, False))
    written = changed_days(fresh, stored)
    assert sorted(written["date"]) == [d2, d3]
    assert changed_days(fresh, None) is fresh
    assert changed_days(fresh, fresh.copy()).empty


def test_a_day_whose_usage_quantity_changed_or_appeared_is_written_again() -> None:
    d1, d2, d3 = date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)
    before = pd.DataFrame(_rows(d1, 1.0) + _rows(d2, 2.0) + _rows(d3, 3.0))
    stored = before.assign(usage_quantity=[10.0, 20.0, None])
    fresh = before.assign(usage_quantity=[10.0, 25.0, 30.0])
    assert sorted(changed_days(fresh, stored)["date"]) == [d2, d3]
    assert changed_days(fresh, fresh.copy()).empty
    # files written before the column: every day gains its quantity
    assert sorted(changed_days(fresh, before)["date"]) == [d1, d2, d3]


# --- the collector with a fake Cost Explorer -------------------------------------------------


def test_collect_cost_reads_pairs_then_each_pairs_detail(
        caplog: pytest.LogCaptureFixture) -> None:
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    start, end = date(2026, 11, 1), date(2026, 11, 27)
    pairs = {"ResultsByTime": [
        _period("2026-11-01", [_group(["777777777777", "Team$orders"], "10.5"),
                               _group(["777777777777", "Team$"], "2.25")]),
        _period("2026-11-26", [_group(["777777777777", "Team$orders"], "4")], estimated=True),
    ]}
    orders = {"ResultsByTime": [
        _period("2026-11-01", [_group(["EC2 - Other", "NatGateway-Bytes"], "10.5", "233.3")]),
        _period("2026-11-26", [_group(["EC2 - Other", "NatGateway-Bytes"], "4", "88.8")],
                True),
    ]}
    untagged = {"ResultsByTime": [
        _period("2026-11-01", [_group(["AWS Systems Manager", "USE1-PS-APIInteractions"],
                                      "2.25")])]}
    ce = FakeCostExplorer({
        json.dumps(pairs_request(start, end, "Team")): pairs,
        json.dumps(detail_request(start, end, "Team", "777777777777", "orders")): orders,
        json.dumps(detail_request(start, end, "Team", "777777777777", "")): untagged,
    })
    ctx = CollectContext(
        account=Account("101010101010", "org-management", "platform"), region="us-east-1",
        window=Window(now, now), collected_at=now, client_factory=lambda _: ce,
        settings=SETTINGS, watermark=datetime(2026, 11, 1, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="collectors.cost"):
        result = collect_cost(ctx)
    frame = result.frames[COST_DAILY.name]
    COST_DAILY.to_table(frame)  # the contract holds
    assert len(ce.calls) == 3
    assert sorted(zip(frame["team_tag"], frame["amount"], strict=True)) == [
        ("", 2.25), ("orders", 4.0), ("orders", 10.5)]
    quantities = dict(zip(frame["amount"], frame["usage_quantity"], strict=True))
    assert quantities[10.5] == 233.3 and quantities[4.0] == 88.8
    assert pd.isna(quantities[2.25])  # the untagged group has none: null, logged once
    missing = [r.message for r in caplog.records if "UsageQuantity" in r.message]
    assert len(missing) == 1 and "1 of 3 groups" in missing[0]
    assert frame.loc[frame["date"] == date(2026, 11, 26), "estimated"].all()
    assert result.watermark == datetime(2026, 11, 1, tzinfo=UTC)
