"""The change-event templates (orgscope/iam/orgscope-change-*.yaml) carry the pattern the code
reacts to, deliver only to where they should, and grant orgscope exactly the queue calls the
change feed makes, on that queue only (docs/iam.md, "Change events"). cfn-lint checks them
with the role templates (tests/test_iam_templates.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orgscope.change_feed import QUEUE_ACTIONS
from orgscope.changes import change_event_pattern
from orgscope.iam_templates import (
    CHANGE_FORWARDER_TEMPLATE,
    CHANGE_QUEUE_TEMPLATE,
    as_list,
    load_template,
)

TEMPLATES = [CHANGE_FORWARDER_TEMPLATE, CHANGE_QUEUE_TEMPLATE]


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource["Properties"] for name, resource in template["Resources"].items()
            if resource["Type"] == kind}


@pytest.fixture(scope="module")
def forwarder() -> dict[str, Any]:
    return load_template(CHANGE_FORWARDER_TEMPLATE)


@pytest.fixture(scope="module")
def queue() -> dict[str, Any]:
    return load_template(CHANGE_QUEUE_TEMPLATE)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_both_rules_carry_the_pattern_the_code_reacts_to(path: Path) -> None:
    rules = _resources(load_template(path), "AWS::Events::Rule")
    assert len(rules) == 1
    (rule,) = rules.values()
    assert rule["EventPattern"] == change_event_pattern()
    assert rule["State"] == "ENABLED"


def test_the_forwarder_sits_on_the_default_bus_and_targets_only_the_change_bus(
        forwarder: dict[str, Any]) -> None:
    (rule,) = _resources(forwarder, "AWS::Events::Rule").values()
    assert rule["EventBusName"] == "default"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "ChangeBusArn"}
    (role,) = _resources(forwarder, "AWS::IAM::Role").values()
    assert "RoleName" not in role, "a fixed name would stop the StackSet in a second region"
    trust = as_list(role["AssumeRolePolicyDocument"]["Statement"])
    assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
    statements = [s for p in role["Policies"] for s in as_list(p["PolicyDocument"]["Statement"])]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", "events:PutEvents", {"Ref": "ChangeBusArn"})]


def test_only_the_organization_may_put_on_the_change_bus(queue: dict[str, Any]) -> None:
    (policy,) = _resources(queue, "AWS::Events::EventBusPolicy").values()
    statement = policy["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


def test_only_the_change_rule_may_send_to_the_queues(queue: dict[str, Any]) -> None:
    rule_arn = {"Fn::GetAtt": "ChangeRule.Arn"}
    policies = _resources(queue, "AWS::SQS::QueuePolicy")
    assert len(policies) == 2
    for policy in policies.values():
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            assert statement["Principal"] == {"Service": "events.amazonaws.com"}
            assert statement["Action"] == "sqs:SendMessage"
            assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}


def test_the_queue_has_a_dead_letter_queue_and_outlives_a_long_poll(
        queue: dict[str, Any]) -> None:
    queues = _resources(queue, "AWS::SQS::Queue")
    main = queues["ChangeQueue"]
    assert main["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": "ChangeDeadLetterQueue.Arn"}
    assert main["VisibilityTimeout"] > 20


def test_the_consumer_policy_grants_exactly_the_feeds_calls_on_the_queue_only(
        queue: dict[str, Any]) -> None:
    (policy,) = _resources(queue, "AWS::IAM::ManagedPolicy").values()
    statements = as_list(policy["PolicyDocument"]["Statement"])
    assert len(statements) == 1
    assert sorted(statements[0]["Action"]) == sorted(QUEUE_ACTIONS)
    assert statements[0]["Resource"] == {"Fn::GetAtt": "ChangeQueue.Arn"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_no_account_id_is_hard_coded(path: Path) -> None:
    assert not re.search(r"(?<!\\)\b\d{12}\b", path.read_text(encoding="utf-8"))
