"""Unit cost per event flow (orgscope/cost/flows.py): allocation to the cent, the lines no
flow carries, and the risers' reasons."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgscope.cost import flows

PRODUCER = "111111111111"  # customer-web: publishes quickgrocer.customer-web
CENTRAL = "121212121212"  # event-bus: the central bus, forwards cross-account
CONSUMER = "777777777777"  # order-processing: its default bus delivers to SQS
QUIET = "333333333333"  # partner-portal: a rule whose events never come
EB = "CloudWatch Events"
SQS = "Amazon Simple Queue Service"
PATTERN = json.dumps({"source": ["quickgrocer.customer-web"]})

#: Days the tests run on: month starts and ends, a year end, a leap day.
DAYS = [date(2024, 2, 29), date(2024, 3, 1), date(2025, 12, 31), date(2026, 1, 1),
        date(2026, 11, 30)]


def _accounts() -> pd.DataFrame:
    return pd.DataFrame({"account_id": [PRODUCER, CENTRAL, CONSUMER, QUIET],
                         "name": ["customer-web", "event-bus", "order-processing",
                                  "partner-portal"],
                         "team": ["customer-web", "platform", "orders", "partners"]})


def _targets(*arns: str) -> str:
    return json.dumps([{"id": str(i), "arn": arn} for i, arn in enumerate(arns)])


def _rules() -> pd.DataFrame:
    forward = f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/default"
    queue = f"arn:aws:sqs:us-east-1:{CONSUMER}:order-fulfilment"
    quiet = f"arn:aws:sqs:us-east-1:{QUIET}:partner-orders"
    return pd.DataFrame([
        (CENTRAL, "us-east-1", "central-bus", "orders-to-fulfilment", PATTERN, _targets(forward)),
        (CONSUMER, "us-east-1", "default", "fulfil-orders", PATTERN, _targets(queue)),
        (QUIET, "us-east-1", "default", "partner-orders", PATTERN, _targets(quiet)),
        (CENTRAL, "us-east-1", "central-bus", "no-targets", PATTERN, None),
        (CONSUMER, "us-east-1", "default", "nightly", None,
         _targets(f"arn:aws:lambda:us-east-1:{CONSUMER}:function:nightly")),
    ], columns=["account_id", "region", "bus", "rule", "event_pattern", "targets"])


def _buses() -> pd.DataFrame:
    return pd.DataFrame([
        (CENTRAL, "us-east-1", "central-bus", [PRODUCER]),
        (CONSUMER, "us-east-1", "default", [f"arn:aws:iam::{CENTRAL}:root"]),
        (QUIET, "us-east-1", "default", []),
    ], columns=["account_id", "region", "bus", "allowed_principals"])


def _edges() -> pd.DataFrame:
    return flows.flow_edges(_rules(), _buses(), _accounts(), {},
                            {PRODUCER: "customer-web", CENTRAL: "platform",
                             CONSUMER: "orders", QUIET: "partners"})


def _metrics(days: list[date], delivered: float, failed: float = 0.0,
             retries: float = 0.0) -> pd.DataFrame:
    rows = []
    for day in days:
        for account, bus, rule in ((CENTRAL, "central-bus", "orders-to-fulfilment"),
                                   (CONSUMER, "default", "fulfil-orders")):
            rows.append((day, account, "us-east-1", bus, rule, "Invocations",
                         delivered + failed))
            if failed:
                rows.append((day, account, "us-east-1", bus, rule, "FailedInvocations",
                             failed))
            if retries:
                rows.append((day, account, "us-east-1", bus, rule,
                             "RetryInvocationAttempts", retries))
        rows.append((day, PRODUCER, "us-east-1", None, None, "PutEventsEntriesCount",
                     delivered))
    return pd.DataFrame(rows, columns=["date", "account_id", "region", "bus", "rule",
                                       "metric", "value"])


def _cost(days: list[date], eb_producer: float = 1.234567, eb_central: float = 2.5,
          sqs: float = 0.333333) -> pd.DataFrame:
    rows = []
    for day in days:
        rows += [(day, PRODUCER, "customer-web", EB, "USE1-Event-64K-Chunks", eb_producer),
                 (day, CENTRAL, "platform", EB, "USE1-Event-64K-Chunks", eb_central),
                 (day, CONSUMER, "orders", SQS, "Requests-Tier1", sqs * 0.9),
                 (day, CONSUMER, "", SQS, "Requests-Tier1", sqs * 0.1),
                 (day, CONSUMER, "orders", "AWS Lambda", "Lambda-GB-Second", 9.0),
                 (day, QUIET, "partners", SQS, "Requests-Tier1", 0.01)]
    return pd.DataFrame(rows, columns=["date", "account_id", "team_tag", "service",
                                       "usage_type", "amount"]).assign(currency="USD")


def _one_line(day: date, account_id: str, usage_type: str, amount: float) -> pd.DataFrame:
    """One untagged EventBridge line."""
    return pd.DataFrame([(day, account_id, "", EB, usage_type, amount)],
                        columns=["date", "account_id", "team_tag", "service", "usage_type",
                                 "amount"]).assign(currency="USD")


def _allocate(cost: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    edges = _edges()
    return flows.allocate(flows.cost_lines(cost), edges,
                          flows.flow_days(edges, flows.rule_days(metrics)))


@given(total=st.integers(min_value=-10**12, max_value=10**12),
       weights=st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1,
                        max_size=30).filter(lambda ws: sum(ws) > 0))
def test_split_micros_adds_up_exactly(total: int, weights: list[float]) -> None:
    parts = flows.split_micros(total, weights)
    assert sum(parts) == total
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_line_adds_up_to_the_cent(day: date) -> None:
    days = [day - timedelta(days=1), day]
    cost = _cost(days)
    result = _allocate(cost, _metrics(days, delivered=1000.0))
    source = cost.groupby(["date", "account_id", "service", "usage_type"])["amount"].sum()
    split = result[result["cost_account_id"] != ""].groupby(
        ["date", "cost_account_id", "service", "usage_type"])["amount"].sum()
    flow_lines = source.drop(index=[(d, CONSUMER, "AWS Lambda", "Lambda-GB-Second")
                                    for d in days])
    assert sorted(split.index) == sorted(flow_lines.index)
    for key, amount in flow_lines.items():
        assert round(split[key] * 100) == round(amount * 100), key
        assert abs(split[key] - amount) < 1e-6, key
    assert (result["month"] == [f"{d:%Y-%m}" for d in result["date"]]).all()


def test_the_methods_say_who_pays_what() -> None:
    day = DAYS[0]
    result = _allocate(_cost([day]), _metrics([day], delivered=500.0))
    producer = result[result["cost_account_id"] == PRODUCER]
    # the producer publishes to the central bus only (the consumer's bus admits the central
    # account): its line goes to the central rule, not the consumer's copy of the pattern
    assert set(producer["rule"]) == {"orders-to-fulfilment"}
    assert set(producer["method"]) == {flows.METHOD_EVENTBRIDGE}
    central = result[result["cost_account_id"] == CENTRAL]
    assert set(central["rule"]) == {"orders-to-fulfilment"}  # it forwards cross-account
    sqs = result[(result["cost_account_id"] == CONSUMER) & (result["service"] == SQS)]
    assert set(sqs["rule"]) == {"fulfil-orders"}
    assert set(sqs["method"]) == {flows.METHOD_TARGET}
    assert set(result["team"]) >= {"platform", "orders"}


def test_a_day_without_events_is_its_own_unallocated_line() -> None:
    day = DAYS[2]
    cost = _cost([day])
    result = _allocate(cost, _metrics([day], delivered=0.0))
    assert (result["rule"] == "").all()
    assert set(result["method"]) == {flows.METHOD_NO_EVENTS}
    assert result["amount"].sum() == pytest.approx(
        cost[cost["service"] != "AWS Lambda"]["amount"].sum(), abs=1e-9)


def test_a_flow_with_no_events_gets_nothing_and_its_line_stays() -> None:
    day = DAYS[1]
    result = _allocate(_cost([day]), _metrics([day], delivered=100.0))
    assert "partner-orders" not in set(result["rule"])
    quiet = result[result["cost_account_id"] == QUIET]
    assert list(quiet["method"]) == [flows.METHOD_NO_EVENTS]
    assert quiet["amount"].sum() == pytest.approx(0.01)


def test_an_account_with_no_eventbridge_cost_still_carries_its_target_line() -> None:
    day = DAYS[3]
    cost = _cost([day])
    cost = cost[cost["service"] != EB]
    result = _allocate(cost, _metrics([day], delivered=100.0))
    assert set(result["component"]) == {flows.COMPONENT_TARGET, flows.COMPONENT_NONE}
    none = result[result["component"] == flows.COMPONENT_NONE]
    # the forwarding rule has events but no line today: a zero row keeps its events
    assert list(none["rule"]) == ["orders-to-fulfilment"]
    assert list(none["amount"]) == [0.0]
    assert list(none["method"]) == [flows.METHOD_NO_COST]


def test_an_eventbridge_line_no_flow_sends_is_unallocated() -> None:
    day = DAYS[4]
    cost = _one_line(day, QUIET, "Event-64K-Chunks", 0.42)
    result = _allocate(cost, _metrics([day], delivered=10.0))
    line = result[result["cost_account_id"] == QUIET]
    assert list(line["method"]) == [flows.METHOD_NO_FLOW]
    assert list(line["team"]) == [flows.UNALLOCATED]


def test_a_rule_without_targets_or_pattern_has_no_flow() -> None:
    rules = set(_edges()["rule"])
    assert "no-targets" not in rules
    assert "nightly" not in rules  # scheduled: its account's Lambda line is no flow line


def test_unit_cost_per_flow_and_team() -> None:
    day = DAYS[0]
    result = _allocate(_cost([day], eb_producer=1.0, eb_central=2.0, sqs=0.5),
                       _metrics([day], delivered=1_000_000.0))
    per_flow = flows.flow_totals(result).set_index("rule")
    assert per_flow.loc["orders-to-fulfilment", "per_million"] == pytest.approx(3.0)
    assert per_flow.loc["fulfil-orders", "per_million"] == pytest.approx(0.5)
    teams = flows.team_totals(result).set_index("team")
    assert teams.loc["platform", "amount"] == pytest.approx(3.0)
    assert teams.loc["orders", "events"] == pytest.approx(1_000_000.0)


def _two_months(this_day: date, before: dict[str, float], now: dict[str, float]
                ) -> pd.DataFrame:
    prev_day = (this_day.replace(day=1) - timedelta(days=1)).replace(day=this_day.day)
    parts = []
    for day, values in ((prev_day, before), (this_day, now)):
        parts.append(_allocate(_cost([day], sqs=values["sqs"]),
                               _metrics([day], delivered=values["events"],
                                        retries=values.get("retries", 0.0))))
    return pd.concat(parts, ignore_index=True)


def test_risers_say_volume_fell() -> None:
    day = date(2026, 3, 10)
    frame = _two_months(day, {"sqs": 1.0, "events": 1000.0}, {"sqs": 1.0, "events": 400.0})
    trend = flows.trend(frame, "2026-03", day)
    rows = trend.set_index("rule")
    decomposed = rows[["volume", "target_cost", "eventbridge_cost"]].sum(axis=1)
    assert decomposed.to_numpy() == pytest.approx(rows["change"].to_numpy())
    top = flows.risers(trend).set_index("rule")
    assert top.loc["fulfil-orders", "reason"] == "volume fell 60%"


def test_risers_say_retries_rose() -> None:
    day = date(2024, 3, 1)  # the previous month's same day after a leap February
    frame = _two_months(day, {"sqs": 1.0, "events": 1000.0},
                        {"sqs": 3.0, "events": 1000.0, "retries": 200.0})
    top = flows.risers(flows.trend(frame, "2024-03", day)).set_index("rule")
    assert top.loc["fulfil-orders", "reason"].startswith("retries rose (0.0% -> 20.0%")
    assert "target cost rose $2.00" in top.loc["fulfil-orders", "reason"]


def test_a_cross_account_invocation_line_goes_to_the_rules_that_send_across() -> None:
    day = DAYS[0]
    cost = _one_line(day, CENTRAL, "USE1-Invocation-64K-Chunks", 0.05)
    result = _allocate(cost, _metrics([day], delivered=10.0))
    assert list(result.loc[result["cost_account_id"] == CENTRAL, "rule"]) == \
        ["orders-to-fulfilment"]
    assert result["amount"].sum() == pytest.approx(0.05)


def test_end_to_end_adds_the_forwarding_hop_whose_pattern_overlaps() -> None:
    day = DAYS[3]
    result = _allocate(_cost([day], eb_producer=1.0, eb_central=2.0, sqs=0.5),
                       _metrics([day], delivered=1_000_000.0))
    totals = flows.flow_totals(result)
    other = json.dumps({"source": ["quickgrocer.payments"]})
    patterns = {(CENTRAL, "us-east-1", "central-bus", "orders-to-fulfilment"): PATTERN,
                (CONSUMER, "us-east-1", "default", "fulfil-orders"): PATTERN}
    routes = flows.end_to_end(totals, patterns).set_index("rule")
    assert list(routes.index) == ["fulfil-orders"]  # the forwarding flow ends at a bus
    assert routes.loc["fulfil-orders", "hops"] == [f"{CENTRAL}/central-bus/orders-to-fulfilment"]
    assert routes.loc["fulfil-orders", "end_to_end"] == pytest.approx(3.0 + 0.5)
    patterns[(CENTRAL, "us-east-1", "central-bus", "orders-to-fulfilment")] = other
    alone = flows.end_to_end(totals, patterns).set_index("rule")
    assert alone.loc["fulfil-orders", "hops"] == []
    assert alone.loc["fulfil-orders", "end_to_end"] == pytest.approx(0.5)


def test_patterns_overlap_on_source_and_detail_type() -> None:
    placed = json.dumps({"source": ["a"], "detail-type": ["Order Placed"]})
    assert flows.patterns_overlap(placed, json.dumps({"source": ["a", "b"]}))
    assert not flows.patterns_overlap(placed, json.dumps({"source": ["b"]}))
    assert not flows.patterns_overlap(placed, json.dumps({"detail-type": ["Order Updated"]}))
    assert flows.patterns_overlap(placed, json.dumps({"source": [{"prefix": "b"}]}))
    assert flows.patterns_overlap(placed, None)
