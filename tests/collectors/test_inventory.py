"""Inventory collector: the pure record builders (the AWS side is in tests/integration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from collectors.inventory import policy_principals, rule_record, target_record
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import RULES

NOW = datetime(2026, 11, 26, tzinfo=UTC)
CTX = CollectContext(account=Account("121212121212", "event-bus", "platform"), region="us-east-1",
                     window=Window(NOW, NOW), collected_at=NOW, client_factory=lambda s: None)


def test_policy_principals_reads_accounts_and_org_conditions() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*",
             "Principal": {"AWS": "arn:aws:iam::111111111111:root"}},
            {"Effect": "Allow", "Action": ["events:PutEvents"], "Resource": "*",
             "Principal": {"AWS": ["222222222222", "arn:aws:iam::333333333333:role/pub"]}},
            {"Effect": "Allow", "Action": "events:PutEvents", "Principal": "*",
             "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}},
            {"Effect": "Deny", "Action": "events:PutEvents",
             "Principal": {"AWS": "444444444444"}},
            {"Effect": "Allow", "Action": "events:DescribeRule",
             "Principal": {"AWS": "555555555555"}},
        ],
    }
    assert policy_principals(json.dumps(policy)) == [
        "111111111111", "222222222222", "arn:aws:iam::333333333333:role/pub", "org:o-abc"]


def test_policy_principals_without_policy() -> None:
    assert policy_principals(None) == []


def test_policy_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        policy_principals("{not json")


def test_rule_record_keeps_targets_dlqs_and_tags() -> None:
    rule = {"Name": "order-placed", "Arn": "arn:aws:events:us-east-1:121212121212:rule/x",
            "State": "ENABLED", "EventPattern": json.dumps({"source": ["quickgrocer.web"]})}
    targets = [{"Id": "t1", "Arn": "arn:aws:sqs:us-east-1:777777777777:orders",
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:777777777777:orders-dlq"},
                "RetryPolicy": {"MaximumRetryAttempts": 5}}]
    row = rule_record(CTX, "central-bus", rule, targets, {"Team": "platform"})
    assert row["dlq_arns"] == ["arn:aws:sqs:us-east-1:777777777777:orders-dlq"]
    assert row["target_count"] == 1
    assert json.loads(row["targets"])[0]["retry_policy"] == {"MaximumRetryAttempts": 5}
    assert json.loads(row["tags"]) == {"Team": "platform"}
    assert set(row) == set(RULES.columns)


def test_rule_record_refuses_a_pattern_that_is_not_json() -> None:
    rule = {"Name": "broken", "State": "ENABLED", "EventPattern": "{source: x"}
    with pytest.raises(ValueError):
        rule_record(CTX, "default", rule, [], {})


def test_target_without_dlq() -> None:
    assert target_record({"Id": "a", "Arn": "arn"})["dlq_arn"] is None
