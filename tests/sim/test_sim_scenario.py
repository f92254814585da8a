"""A simulator started with a scenario file and an ExternalId on orgscope's read role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from orgscope.aws import AccessError
from tests.sim.conftest import Running, start_sim

pytestmark = pytest.mark.integration

CENTRAL = "121212121212"
SCENARIO = """
[[events]]
at = "+10m"
action = "disable_rule"
account = "121212121212"
bus = "central-bus"
rule = "order-placed-to-order-processing"

[[events]]
at = "+20m"
action = "break_pattern"
account = "777777777777"
rule = "payment-events-to-order-processing"
"""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("scenario")
    scenario = tmp / "scenario.toml"
    scenario.write_text(SCENARIO)
    yield from start_sim(tmp, {"ORGSCOPE_EXTERNAL_ID": "quickgrocer-2026"}, scenario)


def _state(running: Running, account: str, bus: str, rule: str) -> str:
    events = running.org.admin.client(account, "events")
    return str(events.describe_rule(Name=rule, EventBusName=bus)["State"])


def test_external_id_mismatch_is_refused(running: Running,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    running.factory().session("111111111111")  # the right ExternalId works
    monkeypatch.setenv("ORGSCOPE_EXTERNAL_ID", "guessed")
    with pytest.raises(AccessError) as caught:
        running.factory().session("111111111111")
    assert "AccessDenied" in caught.value.reason
    monkeypatch.delenv("ORGSCOPE_EXTERNAL_ID")
    with pytest.raises(AccessError):
        running.factory().session("111111111111")


def test_scenario_entries_fire_at_their_time(running: Running) -> None:
    rule = "order-placed-to-order-processing"
    running.advance(5)
    assert _state(running, CENTRAL, "central-bus", rule) == "ENABLED"
    running.advance(6)  # now past +10m
    assert _state(running, CENTRAL, "central-bus", rule) == "DISABLED"
    start, end = running.advance(5)
    cloudwatch = running.org.admin.client(CENTRAL, "cloudwatch")
    silent = cloudwatch.get_metric_statistics(
        Namespace="AWS/Events", MetricName="MatchedEvents", StartTime=start, EndTime=end,
        Period=60, Statistics=["Sum"],
        Dimensions=[{"Name": "EventBusName", "Value": "central-bus"},
                    {"Name": "RuleName", "Value": rule}])
    assert silent["Datapoints"] == []


def test_broken_pattern_goes_silent_but_stays_enabled(running: Running) -> None:
    rule = "payment-events-to-order-processing"
    assert running.org.started_at is not None
    running.now = max(running.now, running.org.started_at + timedelta(minutes=20, seconds=30))
    start, end = running.advance(4)
    events = running.org.admin.client("777777777777", "events")
    described = events.describe_rule(Name=rule)
    assert described["State"] == "ENABLED"
    assert "PaymentProcessed" in described["EventPattern"]
    cloudwatch = running.org.admin.client("777777777777", "cloudwatch")
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/Events", MetricName="MatchedEvents", StartTime=start, EndTime=end,
        Period=60, Statistics=["Sum"], Dimensions=[{"Name": "RuleName", "Value": rule}])
    assert points["Datapoints"] == []
