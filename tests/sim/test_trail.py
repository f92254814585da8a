"""The simulator's CloudTrail events reach the forwarding rule whatever else the default bus
holds (sim/trail.py), here against moto in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from orgscope.changes import change_event_pattern
from sim.trail import cloudtrail_detail, put_on_default_bus

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account, where the clients below act


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_a_target_moto_cannot_deliver_to_does_not_keep_the_event_from_the_forwarder(
        aws: None) -> None:
    """The second organization's default buses have targets moto cannot deliver to (a
    state machine); created before the forwarder, such a rule stopped moto's PutEvents loop
    and the change event never reached the queue."""
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    pattern = json.dumps(change_event_pattern())
    events.put_rule(Name="to-a-state-machine", EventPattern=pattern)
    events.put_targets(Rule="to-a-state-machine", Targets=[{
        "Id": "sfn", "Arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:dispatch",
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/invoke"}])
    url = sqs.create_queue(QueueName="changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="forwarder", EventPattern=pattern)
    events.put_targets(Rule="forwarder", Targets=[{"Id": "queue", "Arn": arn}])
    identity = {"type": "AssumedRole", "accountId": ACCOUNT,
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/jo", "principalId": "AROA:jo"}
    detail = cloudtrail_detail("DisableRule", {"Name": "orders-in"}, identity, REGION,
                               datetime.now(UTC))
    put_on_default_bus(ACCOUNT, REGION, detail)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    (body,) = [json.loads(m["Body"]) for m in messages]
    assert body["detail"]["eventName"] == "DisableRule"
    assert body["detail"]["requestParameters"]["name"] == "orders-in"
    assert body["source"] == "aws.events"
    assert body["detail"]["recipientAccountId"] == ACCOUNT  # what orgscope.changes reads
