from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from sim.state import Bus, Rule, Target, World
from sim.topology import SCHEMA_CHANGES, STREAMS
from sim.traffic import (
    Fault,
    Faults,
    Rollout,
    Rollouts,
    TrafficModel,
    bus_admits,
    daily_shape,
    release_levels,
    stream_counts,
)

MINUTE = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)
PRODUCERS = {"customer-web": "111111111111", "mobile-apps": "222222222222",
             "payment-service": "999999999999"}
CENTRAL = ("121212121212", "central-bus")
POLICY = json.dumps({"Statement": [
    {"Sid": f"allow-{a}", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a}:root"},
     "Action": "events:PutEvents"} for a in PRODUCERS.values()]})
ORDERS = json.dumps({"source": ["quickgrocer.customer-web"], "detail-type": ["Order Placed"]})


def world(state: str = "ENABLED", pattern: str = ORDERS, policy: str | None = POLICY) -> World:
    central_rule = Rule(CENTRAL[0], CENTRAL[1], "orders", state, pattern, (
        Target("to-team", "arn:aws:events:us-east-1:777777777777:event-bus/default", None, 185),))
    team_rule = Rule("777777777777", "default", "orders", "ENABLED", pattern, (
        Target("queue", "arn:aws:sqs:us-east-1:777777777777:q", "arn:aws:sqs:us-east-1:"
               "777777777777:q-dlq", 2),))
    team_policy = json.dumps({"Statement": [{"Effect": "Allow", "Action": "events:PutEvents",
                                             "Principal": {"AWS": CENTRAL[0]}}]})
    return World({
        CENTRAL: Bus(CENTRAL[0], CENTRAL[1], policy, (central_rule,)),
        ("777777777777", "default"): Bus("777777777777", "default", team_policy, (team_rule,)),
    })


def model() -> TrafficModel:
    return TrafficModel(STREAMS, PRODUCERS, CENTRAL, "us-east-1", seed=7)


def metric(result: object, account: str, name: str) -> float:
    data = result.metrics.get(account, [])  # type: ignore[attr-defined]
    return float(sum(d["Value"] for d in data if d["MetricName"] == name))


def test_daily_shape_has_a_night_lull_and_evening_peak() -> None:
    night = daily_shape(MINUTE.replace(hour=3))
    evening = daily_shape(MINUTE)
    assert 0.1 < night < 0.2 < 0.8 < evening <= 1.2


def test_counts_are_deterministic_per_seed_and_minute() -> None:
    stream = STREAMS[0]
    assert stream_counts(stream, MINUTE, 7) == stream_counts(stream, MINUTE, 7)
    runs = {tuple(stream_counts(stream, MINUTE + timedelta(minutes=i), 7)) for i in range(5)}
    assert len(runs) > 1


def test_matched_events_flow_to_the_team_account_with_aws_dimensions() -> None:
    result = model().minute(world(), MINUTE)
    matched = metric(result, CENTRAL[0], "MatchedEvents")
    assert matched > 0
    assert metric(result, "777777777777", "MatchedEvents") == matched
    central_dims = {d["Name"] for d in result.metrics[CENTRAL[0]][0]["Dimensions"]}
    assert central_dims == {"EventBusName", "RuleName"}
    team = [d for d in result.metrics["777777777777"] if d["MetricName"] == "MatchedEvents"]
    assert team[0]["Dimensions"] == [{"Name": "RuleName", "Value": "orders"}]
    assert metric(result, CENTRAL[0], "FailedInvocations") == 0  # omitted at zero
    assert all(d["MetricName"] != "FailedInvocations" for d in result.metrics[CENTRAL[0]])
    assert metric(result, "111111111111", "PutEventsEntriesCount") > 0


def test_disabled_rule_and_broken_pattern_match_nothing() -> None:
    for broken in (world(state="DISABLED"),
                   world(pattern=ORDERS.replace("Order Placed", "OrderPlaced"))):
        result = model().minute(broken, MINUTE)
        assert metric(result, CENTRAL[0], "MatchedEvents") == 0
        assert metric(result, "111111111111", "PutEventsEntriesCount") > 0


def test_producer_refused_by_the_bus_policy_fails_its_put_events() -> None:
    result = model().minute(world(policy=None), MINUTE)
    assert metric(result, "111111111111", "PutEventsFailedEntriesCount") > 0
    assert metric(result, CENTRAL[0], "MatchedEvents") == 0


def test_target_errors_retry_then_dead_letter() -> None:
    fault = Fault("target_errors", "777777777777", "default", "orders", 1.0,
                  MINUTE, MINUTE + timedelta(minutes=5))
    result = model().minute(world(), MINUTE, Faults((fault,)))
    failed = metric(result, "777777777777", "FailedInvocations")
    assert failed == metric(result, "777777777777", "Invocations") > 0
    assert metric(result, "777777777777", "RetryInvocationAttempts") == 2 * failed
    assert metric(result, "777777777777", "InvocationsSentToDlq") == failed
    (letters,) = result.dead_letters.values()
    assert letters.count == failed == len(letters.events)


def test_bus_policy_conditions_on_detail_type() -> None:
    policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Action": "events:PutEvents", "Principal": {"AWS": "111111111111"},
        "Condition": {"StringEquals": {"events:detail-type": ["Order Placed"]}}}]})
    bus = Bus("121212121212", "central-bus", policy)
    assert bus_admits(bus, "111111111111", {"detail-type": "Order Placed"})
    assert not bus_admits(bus, "111111111111", {"detail-type": "Payment Failed"})
    assert not bus_admits(bus, "222222222222", {"detail-type": "Order Placed"})
    assert bus_admits(bus, "121212121212", {"detail-type": "anything"})


PAYMENTS_BY_PURPOSE = json.dumps({"source": ["quickgrocer.payment-service"],
                                  "detail-type": ["Payment Processed"],
                                  "detail": {"purpose": ["order"]}})
CONTEXT = SCHEMA_CHANGES["payments-context"]
CURRENCY = SCHEMA_CHANGES["payments-currency"]


def payments_world() -> World:
    rule = Rule(CENTRAL[0], CENTRAL[1], "payments", "ENABLED", PAYMENTS_BY_PURPOSE, (
        Target("queue", "arn:aws:sqs:us-east-1:121212121212:q", None, 2),))
    return World({CENTRAL: Bus(CENTRAL[0], CENTRAL[1], POLICY, (rule,))})


def test_a_release_moves_a_field_of_its_share_of_events_and_the_rule_misses_them() -> None:
    payments = metric(model().minute(payments_world(), MINUTE), CENTRAL[0], "MatchedEvents")
    assert payments > 20
    canary = Rollouts((Rollout(CONTEXT, 0.1, MINUTE),))
    during = [metric(model().minute(payments_world(), MINUTE + timedelta(minutes=i),
                                    rollouts=canary), CENTRAL[0], "MatchedEvents")
              for i in range(10)]
    before = [metric(model().minute(payments_world(), MINUTE + timedelta(minutes=i)),
                     CENTRAL[0], "MatchedEvents") for i in range(10)]
    assert 0.75 * sum(before) < sum(during) < sum(before)
    everyone = Rollouts((Rollout(CONTEXT, 0.1, MINUTE), Rollout(CONTEXT, 1.0, MINUTE)))
    assert metric(model().minute(payments_world(), MINUTE, rollouts=everyone), CENTRAL[0],
                  "MatchedEvents") == 0
    not_yet = Rollouts((Rollout(CONTEXT, 1.0, MINUTE + timedelta(minutes=1)),))
    assert metric(model().minute(payments_world(), MINUTE, rollouts=not_yet), CENTRAL[0],
                  "MatchedEvents") == payments


def test_the_bus_sees_each_shape_sent_and_releases_build_on_each_other() -> None:
    both = Rollouts((Rollout(CURRENCY, 1.0, MINUTE), Rollout(CONTEXT, 0.5, MINUTE)))
    result = model().minute(payments_world(), MINUTE, rollouts=both)
    shapes = [e["detail"] for e in result.arrivals[CENTRAL].values()
              if e["detail-type"] == "Payment Processed"]
    assert {"purpose": "order", "amount": 48.0, "currency": "USD"} in shapes
    assert {"amount": 48.0, "currency": "USD",
            "context": {"purpose": "order", "channel": "api"}} in shapes
    assert all("currency" in detail for detail in shapes)  # v3 runs only where v2 does


def test_release_levels_split_every_event_once() -> None:
    rng = random.Random(3)
    counts = release_levels(1000, [0.6, 0.2], rng)
    assert sum(counts) == 1000
    assert 300 < counts[0] < 500 and 300 < counts[1] < 500 and 120 < counts[2] < 280
    assert release_levels(5, [], rng) == [5]
