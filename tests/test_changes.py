"""Change events: CloudTrail's EventBridge calls parsed from the change queue (pure), and the
inventory's re-read of just the rule or bus they name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from collectors.inventory import collect_inventory, reread_changes
from orgscope.accounts import Account
from orgscope.changes import (
    CHANGE_EVENT_NAMES,
    ChangeRecordError,
    changes_frame,
    parse_change,
)
from orgscope.collect import CollectContext, Window
from orgscope.datasets import EVENT_BUSES, RULE_CHANGES, RULES
from testkit.hostile import all_hostile

#: A leap day's last minute: the event was made before midnight and received after it.
T0 = datetime(2028, 2, 29, 23, 59, 30, tzinfo=UTC)
ACCOUNT = "444455556666"
ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/jo"


def event(name: str = "DisableRule", *, params: dict[str, Any] | None = None,
          identity: dict[str, Any] | None = None, **detail: Any) -> str:
    """An SQS message body as EventBridge delivers a CloudTrail event (its real shape)."""
    body = {
        "version": "0", "id": "a1b2", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.events", "account": "131313131313", "time": "2028-02-29T23:59:29Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventSource": "events.amazonaws.com", "eventName": name,
            "eventTime": "2028-02-29T23:59:28Z", "awsRegion": "eu-west-1",
            "recipientAccountId": ACCOUNT, "eventID": "ct-1",
            "userIdentity": identity if identity is not None else {
                "type": "AssumedRole", "arn": ARN, "principalId": "AROAEXAMPLE:jo",
                "accountId": ACCOUNT},
            "requestParameters": params if params is not None else {
                "name": "orders-to-billing", "eventBusName": "central-bus"},
            **detail,
        },
    }
    return json.dumps(body)


def test_a_disable_names_the_rule_the_account_the_region_and_who() -> None:
    change = parse_change(event(), T0)
    assert (change.account_id, change.region, change.bus, change.rule) == (
        ACCOUNT, "eu-west-1", "central-bus", "orders-to-billing")
    assert change.event_name == "DisableRule"
    assert (change.principal_arn, change.principal_type) == (ARN, "AssumedRole")
    assert change.event_time == datetime(2028, 2, 29, 23, 59, 28, tzinfo=UTC)
    assert change.received_at == T0
    assert change.event_id == "ct-1"


def test_the_default_bus_when_none_is_named_and_a_bus_arn_as_its_name() -> None:
    assert parse_change(event(params={"name": "r"}), T0).bus == "default"
    arn = f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/central-bus"
    assert parse_change(event(params={"name": "r", "eventBusName": arn}), T0).bus == \
        "central-bus"


@pytest.mark.parametrize(("resource", "bus", "rule"), [
    (f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/central-bus/orders", "central-bus", "orders"),
    (f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/orders", "default", "orders"),
    (f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/central-bus", "central-bus", None),
])
def test_tags_name_their_rule_or_bus_by_arn(resource: str, bus: str, rule: str | None) -> None:
    change = parse_change(event("TagResource", params={"resourceARN": resource}), T0)
    assert (change.bus, change.rule) == (bus, rule)


def test_bus_changes_name_no_rule() -> None:
    for name in ("PutPermission", "RemovePermission"):
        change = parse_change(event(name, params={"eventBusName": "central-bus"}), T0)
        assert (change.bus, change.rule) == ("central-bus", None)
    deleted = parse_change(event("DeleteEventBus", params={"name": "old-bus"}), T0)
    assert (deleted.bus, deleted.rule) == ("old-bus", None)


def test_optional_fields_may_be_absent() -> None:
    change = parse_change(event(identity={}, eventID=None), T0)
    assert change.principal_arn is None and change.principal_type is None
    assert change.event_id == "a1b2"  # the event's own id when CloudTrail's is missing


@pytest.mark.parametrize("body", [
    "not json", "[]", json.dumps({"detail": "x"}),
    event(eventSource="s3.amazonaws.com"),
    event("ListRules"),
    event(recipientAccountId="12345"),
    event(awsRegion="moon-1"),
    event(eventTime="yesterday"),
    event(params={}),
    event("TagResource", params={"resourceARN": "arn:aws:sqs:us-east-1:1:q"}),
])
def test_bad_records_are_refused_with_a_reason(body: str) -> None:
    with pytest.raises(ChangeRecordError):
        parse_change(body, T0)


def test_every_change_call_parses() -> None:
    for name in CHANGE_EVENT_NAMES:
        params = {"resourceARN": f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/r"} \
            if name in ("TagResource", "UntagResource") else {"name": "r"}
        assert parse_change(event(name, params=params), T0).event_name == name


def test_hostile_text_is_kept_as_text_and_fits_the_dataset() -> None:
    changes = [parse_change(event(params={"name": text}, identity={"arn": text},
                                  eventID=f"id-{i}"), T0 + timedelta(seconds=i))
               for i, text in enumerate(all_hostile()) if text]
    frame = changes_frame(changes)
    RULE_CHANGES.to_table(frame)  # raises on a broken contract
    assert list(frame["principal_arn"]) == [c.principal_arn for c in changes]


# --- the re-read, against moto ---------------------------------------------------------------


def _ctx(events: Any, at: datetime, inputs: dict[str, pd.DataFrame] | None = None
         ) -> CollectContext:
    return CollectContext(account=Account(ACCOUNT, "orders", "orders"), region="eu-west-1",
                          window=Window(at, at), collected_at=at,
                          client_factory=lambda service: events, inputs=inputs or {})


@pytest.fixture
def events() -> Any:
    with mock_aws():
        client = boto3.client("events", region_name="eu-west-1")
        client.create_event_bus(Name="central-bus")
        for name in ("orders-to-billing", "orders-to-stock"):
            client.put_rule(Name=name, EventBusName="central-bus", State="ENABLED",
                            EventPattern=json.dumps({"source": ["shop"]}))
        yield client


def test_a_reread_changes_just_the_named_rule(events: Any) -> None:
    before = collect_inventory(_ctx(events, T0))
    events.disable_rule(Name="orders-to-billing", EventBusName="central-bus")
    events.delete_rule(Name="orders-to-stock", EventBusName="central-bus")
    later = T0 + timedelta(seconds=5)
    changes = [parse_change(event(), later)]
    frames = reread_changes(_ctx(events, later, before), changes)
    rules = frames[RULES.name].set_index("rule")
    assert rules.loc["orders-to-billing", "state"] == "DISABLED"
    # not named by a change: kept as the last inventory saw it (the inventory reconciles)
    assert rules.loc["orders-to-stock", "state"] == "ENABLED"
    assert set(frames[RULES.name]["collected_at"]) == {later}
    assert set(frames[EVENT_BUSES.name]["collected_at"]) == {later}
    RULES.to_table(frames[RULES.name])
    EVENT_BUSES.to_table(frames[EVENT_BUSES.name])


def test_a_deleted_rule_and_a_deleted_bus_leave_the_snapshot(events: Any) -> None:
    before = collect_inventory(_ctx(events, T0))
    events.delete_rule(Name="orders-to-stock", EventBusName="central-bus")
    later = T0 + timedelta(seconds=5)
    gone = parse_change(event("DeleteRule", params={"name": "orders-to-stock",
                                                    "eventBusName": "central-bus"}), later)
    frames = reread_changes(_ctx(events, later, before), [gone])
    assert list(frames[RULES.name]["rule"]) == ["orders-to-billing"]
    buses = frames[EVENT_BUSES.name].set_index("bus")
    assert buses.loc["central-bus", "rule_count"] == 1
    events.delete_rule(Name="orders-to-billing", EventBusName="central-bus")
    events.delete_event_bus(Name="central-bus")
    bus_gone = parse_change(event("DeleteEventBus", params={"name": "central-bus"}), later)
    frames = reread_changes(_ctx(events, later, before), [bus_gone])
    assert "central-bus" not in set(frames[EVENT_BUSES.name]["bus"])
    assert frames[RULES.name].empty
