"""The simulated organization end to end, through orgscope's own session factory and runner."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from collectors.inventory import INVENTORY
from orgscope.aws import AccessError
from orgscope.datasets import all_datasets
from orgscope.runner import Runner
from orgscope.store import Store
from sim.scenario import ScenarioEvent
from tests.sim.conftest import Running

pytestmark = pytest.mark.integration

CENTRAL = "121212121212"
BUS = "central-bus"
PAYMENTS = "999999999999"


def matched_events(running: Running, account: str, bus: str, rule: str, start: datetime,
                   end: datetime, metric: str = "MatchedEvents") -> float:
    """Sum of a rule metric over [start, end), read as the simulator's admin."""
    cloudwatch = running.org.admin.client(account, "cloudwatch")
    dims = [{"Name": "RuleName", "Value": rule}]
    if bus != "default":
        dims.insert(0, {"Name": "EventBusName", "Value": bus})
    response = cloudwatch.get_metric_statistics(
        Namespace="AWS/Events", MetricName=metric, Dimensions=dims, StartTime=start,
        EndTime=end, Period=60, Statistics=["Sum"])
    return float(sum(point["Sum"] for point in response["Datapoints"]))


def test_rules_are_built_and_inventoried(running: Running, tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"), all_datasets())
    result = Runner(running.config, running.factory(), store).run_cycle([INVENTORY])
    assert [r.error for r in result.failed] == []
    rules = store.query("SELECT account_id, bus, rule, state, dlq_arns, tags FROM rules")
    assert 15 <= len(rules) <= 30
    central = rules[rules.account_id == CENTRAL]
    assert set(central.bus) == {BUS}
    team = rules[(rules.account_id == PAYMENTS) & (rules.rule == "order-placed-to-payments")]
    assert len(team) == 1 and len(team.iloc[0].dlq_arns) == 1
    assert set(json.loads(team.iloc[0].tags)) == {"Team", "Service", "Environment",
                                                 "CostCenter", "Owner"}
    buses = store.query("SELECT allowed_principals FROM event_buses "
                        f"WHERE account_id = '{CENTRAL}' AND bus = '{BUS}'")
    assert set(buses.iloc[0].allowed_principals) >= {"111111111111", PAYMENTS}


def test_history_is_back_filled(running: Running) -> None:
    assert running.org.started_at is not None
    end = running.org.started_at.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=30)
    assert matched_events(running, CENTRAL, BUS, "order-events-to-delivery", start, end) > 0
    assert matched_events(running, "888888888888", "default", "order-events-to-delivery",
                          start, end, "Invocations") > 0


def test_disabled_rule_goes_silent_while_others_continue(running: Running) -> None:
    events = running.org.admin.client(CENTRAL, "events")
    events.disable_rule(Name="order-placed-to-inventory", EventBusName=BUS)
    try:
        start, end = running.advance(5)
        assert matched_events(running, CENTRAL, BUS, "order-placed-to-inventory", start, end) == 0
        assert matched_events(running, CENTRAL, BUS, "order-events-to-delivery", start, end) > 0
        # downstream, the inventory team's own rule hears nothing either
        assert matched_events(running, "666666666666", "default", "order-placed-to-inventory",
                              start, end) == 0
    finally:
        events.enable_rule(Name="order-placed-to-inventory", EventBusName=BUS)
    start, end = running.advance(3)
    assert matched_events(running, CENTRAL, BUS, "order-placed-to-inventory", start, end) > 0


def test_missing_role_makes_assume_role_fail_for_that_account_only(running: Running) -> None:
    running.org.break_account("555555555555", "missing-role")
    try:
        factory = running.factory()
        with pytest.raises(AccessError) as caught:
            factory.session("555555555555")
        assert "AccessDenied" in caught.value.reason
        factory.session("444444444444")  # the others are unaffected
    finally:
        running.org.repair_account("555555555555")
    running.factory().session("555555555555")


def test_no_permissions_makes_reads_fail_with_access_denied(running: Running,
                                                            tmp_path: Path) -> None:
    running.org.break_account("666666666666", "no-permissions")
    try:
        events = running.factory().client("666666666666", "events", "us-east-1")
        with pytest.raises(ClientError) as caught:
            events.list_rules()
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        store = Store(str(tmp_path / "store"), all_datasets())
        result = Runner(running.config, running.factory(), store).run_cycle([INVENTORY])
        assert result.reachability["666666666666"] is not None
        assert result.reachability["777777777777"] is None
    finally:
        running.org.repair_account("666666666666")
    running.factory().client("666666666666", "events", "us-east-1").list_rules()


def test_read_role_may_not_write(running: Running) -> None:
    events = running.factory().client(CENTRAL, "events", "us-east-1")
    with pytest.raises(ClientError) as caught:
        events.disable_rule(Name="order-placed-to-inventory", EventBusName=BUS)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def _queue_depth(running: Running, account: str, name: str) -> int:
    sqs = running.org.admin.client(account, "sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url,
                                          AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_target_errors_fill_the_dlq_with_real_messages(running: Running) -> None:
    rule = "order-placed-to-payments"
    dlq = "charging-order-placed-to-payments-dlq"
    assert _queue_depth(running, PAYMENTS, dlq) == 0
    params: dict[str, Any] = {"account": PAYMENTS, "bus": "default", "rule": rule, "rate": 1.0,
                              "duration": "10m"}
    running.org.apply(ScenarioEvent(0, timedelta(0), "target_errors", params),
                      running.now)
    start, end = running.advance(3)
    failed = matched_events(running, PAYMENTS, "default", rule, start, end, "FailedInvocations")
    assert failed > 0
    assert matched_events(running, PAYMENTS, "default", rule, start, end,
                          "InvocationsSentToDlq") == failed
    assert matched_events(running, PAYMENTS, "default", rule, start, end,
                          "RetryInvocationAttempts") >= failed
    assert _queue_depth(running, PAYMENTS, dlq) == min(failed, 100)
    sqs = running.org.admin.client(PAYMENTS, "sqs")
    url = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    message = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"][0]
    body = json.loads(message["Body"])
    assert body["detail-type"] == "Order Placed"
    assert message["MessageAttributes"]["RULE_ARN"]["StringValue"].endswith(f"rule/{rule}")


def test_removed_bus_permission_fails_the_producers_put_events(running: Running) -> None:
    running.org.apply(ScenarioEvent(0, timedelta(0), "remove_bus_permission",
                                    {"account": CENTRAL, "bus": BUS,
                                     "principal": "222222222222"}), running.now)
    # mobile-apps publishes a few events a minute at its busiest and fewer at night: wait up
    # to half an hour of simulated time for its first refused entries
    cloudwatch = running.org.admin.client("222222222222", "cloudwatch")
    start, end = running.advance(4)
    failed = 0.0
    for _ in range(6):
        response = cloudwatch.get_metric_statistics(
            Namespace="AWS/Events", MetricName="PutEventsFailedEntriesCount", StartTime=start,
            EndTime=end, Period=60, Statistics=["Sum"])
        failed = sum(p["Sum"] for p in response["Datapoints"])
        if failed:
            break
        _, end = running.advance(5)
    assert failed > 0
    assert matched_events(running, CENTRAL, BUS, "upgrade-requested-to-payments", start,
                          end) == 0
