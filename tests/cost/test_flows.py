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


# --- usage pricing -----------------------------------------------------------------------------

MICROS = 1_000_000
#: List prices the usage tests bill at: $ per unit of each usage type.
PRICES = {"USE1-Event-64K-Chunks": 1.0e-6, "Event-64K-Chunks": 1.0e-6,
          "USE1-Invocation-64K-Chunks": 1.0e-6, "Requests-Tier1": 0.4e-6,
          "Lambda-GB-Second": 0.0000166667}


def _priced(cost: pd.DataFrame, scale: float = 1.0) -> pd.DataFrame:
    """``cost`` with each row's usage quantity: its amount over the list price, times
    ``scale`` (a line used ``scale`` times as much for the same amount)."""
    return cost.assign(usage_quantity=[a / PRICES[u] * scale for a, u in
                                       zip(cost["amount"], cost["usage_type"], strict=True)])


def _line_rows(result: pd.DataFrame, account_id: str, service: str) -> pd.DataFrame:
    return result[(result["cost_account_id"] == account_id) & (result["service"] == service)]


@pytest.mark.parametrize("day", DAYS, ids=str)
@pytest.mark.parametrize("scale", [None, 1.0, 1e-3, 3.7], ids=["no-quantity", "priced",
                                                                "exceeded", "odd"])
def test_every_line_adds_up_exactly_whatever_its_quantity(day: date, scale: float | None
                                                          ) -> None:
    days = [day - timedelta(days=1), day]
    cost = _cost(days, eb_producer=1.234567, eb_central=2.345679, sqs=0.777777)
    if scale is not None:
        cost = _priced(cost, scale)
    result = _allocate(cost, _metrics(days, delivered=123_457.0))
    source = cost.groupby(["date", "account_id", "service", "usage_type"])["amount"].sum()
    split = result[result["cost_account_id"] != ""].groupby(
        ["date", "cost_account_id", "service", "usage_type"])["amount"].sum()
    for key, amount in split.items():
        assert round(amount * MICROS) == round(source[key] * MICROS), key


def test_a_line_half_used_by_flows_is_half_allocated_half_unallocated() -> None:
    day = DAYS[1]
    # the consumer's SQS line: $0.80 for 2 million requests ($0.40 a million); its one flow
    # delivers 1 million events, one SendMessage each
    cost = _cost([day], sqs=0.8)
    cost = cost.assign(usage_quantity=[1.8e6 if u == "Requests-Tier1" and a == 0.8 * 0.9
                                       else 0.2e6 if u == "Requests-Tier1" and a == 0.8 * 0.1
                                       else None for a, u in
                                       zip(cost["amount"], cost["usage_type"], strict=True)])
    result = _allocate(cost, _metrics([day], delivered=1_000_000.0))
    sqs = _line_rows(result, CONSUMER, SQS)
    used = sqs[sqs["rule"] == "fulfil-orders"]
    rest = sqs[sqs["rule"] == ""]
    assert list(used["method"]) == [flows.METHOD_TARGET_USAGE]
    assert used["amount"].sum() == pytest.approx(0.4, abs=1e-9)
    assert list(rest["method"]) == [flows.METHOD_UNUSED]
    assert list(rest["team"]) == [flows.UNALLOCATED]
    assert round(sqs["amount"].sum() * MICROS) == 800_000
    # the EventBridge lines have no quantity here: shared in full, as before
    producer = _line_rows(result, PRODUCER, EB)
    assert set(producer["method"]) == {flows.METHOD_EVENTBRIDGE}
    assert producer["amount"].sum() == pytest.approx(1.234567)


def test_a_line_missing_a_quantity_on_any_row_is_shared() -> None:
    day = DAYS[2]
    cost = _priced(_cost([day]))
    untagged_sqs = (cost["account_id"] == CONSUMER) & (cost["team_tag"] == "") & \
        (cost["service"] == SQS)
    cost.loc[untagged_sqs, "usage_quantity"] = float("nan")
    result = _allocate(cost, _metrics([day], delivered=1_000.0))
    sqs = _line_rows(result, CONSUMER, SQS)
    assert set(sqs["method"]) == {flows.METHOD_TARGET}
    assert sqs["amount"].sum() == pytest.approx(0.333333)
    producer = _line_rows(result, PRODUCER, EB)
    assert set(producer.loc[producer["rule"] != "", "method"]) == \
        {flows.METHOD_EVENTBRIDGE_USAGE}


def test_flows_exceeding_the_lines_usage_share_the_whole_line_and_say_so() -> None:
    day = DAYS[3]
    # the bill says a thousand times fewer events than the rules delivered
    cost = _priced(_cost([day]), scale=1e-3)
    result = _allocate(cost, _metrics([day], delivered=1_000_000.0))
    producer = _line_rows(result, PRODUCER, EB)
    assert set(producer["method"]) == {flows.METHOD_EVENTBRIDGE_OVER}
    assert producer["amount"].sum() == pytest.approx(1.234567)
    sqs = _line_rows(result, CONSUMER, SQS)
    assert set(sqs["method"]) == {flows.METHOD_TARGET_OVER}
    assert (sqs["rule"] != "").all()


def test_usage_priced_unit_costs_are_the_list_prices() -> None:
    day = DAYS[4]
    # each line bills a billion units: the flows' million events are a thousandth of it
    cost = _priced(_cost([day], eb_producer=1000.0, eb_central=1000.0, sqs=400.0))
    result = _allocate(cost, _metrics([day], delivered=1_000_000.0))
    per_flow = flows.flow_totals(result).set_index("rule")
    # the forward: its producer's event ($1) and the central account's send to the bus ($1)
    assert per_flow.loc["orders-to-fulfilment", "per_million"] == pytest.approx(2.0)
    assert per_flow.loc["fulfil-orders", "per_million"] == pytest.approx(0.4)
    shared = flows.flow_totals(_allocate(_cost([day], eb_producer=1000.0, eb_central=1000.0,
                                               sqs=400.0),
                                         _metrics([day], delivered=1_000_000.0)))
    assert shared.set_index("rule").loc["fulfil-orders", "per_million"] == pytest.approx(400.0)
    unused = result[result["method"] == flows.METHOD_UNUSED]
    assert unused["amount"].sum() == pytest.approx(2400.0 - 2.4)


def test_which_lines_count_per_event_and_how_many_units_an_event_uses() -> None:
    assert flows.per_event("sender", "USE1-Event-64K-Chunks")
    assert flows.per_event("sqs", "USE1-Requests-Tier1")
    assert flows.per_event("lambda", "Request")
    assert flows.per_event("lambda", "USE1-Request-ARM")
    assert not flows.per_event("lambda", "Lambda-GB-Second")
    assert not flows.per_event("stepfunctions", "StateTransition")
    flow = {"account_id": CENTRAL, "target_kind": "bus", "target_account_id": CONSUMER,
            "producers": [PRODUCER, QUIET]}
    assert flows.units_per_event(flow, PRODUCER, "sender") == 0.5
    assert flows.units_per_event(flow, CENTRAL, "sender") == 1.0
    assert flows.units_per_event({**flow, "producers": [CENTRAL]}, CENTRAL, "sender") == 2.0
    assert flows.units_per_event(flow, CONSUMER, "sqs") == flows.REQUESTS_PER_EVENT
