"""The simulator's orgscope roles grant exactly what orgscope/iam/*.yaml grants, through the
IAM gate: the member read role in the member accounts, the management read role (with Cost
Explorer and Organizations) in the management account only.

A collector that starts calling an action its template lacks must fail here as in AWS; the
refusals also check each protocol's access-denied error code (json, query-compatible json,
CBOR), as botocore decodes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgscope.aws import RoleSpec
from orgscope.iam_templates import (
    HEAL_ROLE_TEMPLATE,
    MANAGEMENT_READ_ROLE_TEMPLATE,
    READ_ROLE_TEMPLATE,
    allowed_actions,
    load_template,
)
from sim.build import HEAL_POLICY, READ_POLICY
from sim.topology import OPTED_OUT_ROUTE
from tests.sim.conftest import Running

pytestmark = pytest.mark.integration

CENTRAL = "121212121212"
BUS = "central-bus"
RULE = "order-placed-to-inventory"
PAYMENTS = "999999999999"
DLQ = "charging-order-placed-to-payments-dlq"
DENIED = ("AccessDenied", "AccessDeniedException")


def _heal_role(running: Running) -> RoleSpec:
    heal = running.config.heal
    return RoleSpec(name=heal.role_name, external_id_env=heal.external_id_env,
                    session_name="orgscope-heal-test")


@pytest.mark.parametrize("which", ["read", "management-read", "heal"])
def test_deployed_policy_allows_the_templates_actions(running: Running, which: str) -> None:
    management = running.config.organization.management_account_id
    account, name, policy, template = {
        "read": (PAYMENTS, running.config.aws.read_role_name, READ_POLICY, READ_ROLE_TEMPLATE),
        "management-read": (management, running.config.aws.read_role_name, READ_POLICY,
                            MANAGEMENT_READ_ROLE_TEMPLATE),
        "heal": (PAYMENTS, running.config.heal.role_name, HEAL_POLICY, HEAL_ROLE_TEMPLATE),
    }[which]
    iam = running.org.admin.client(account, "iam")
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [policy]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    statements = document["Statement"]
    # the heal role keeps its template's Deny on the opt-out tag (the gate evaluates it)
    assert [s["Effect"] for s in statements] == (["Allow", "Deny"] if which == "heal"
                                                 else ["Allow"])
    assert set(statements[0]["Action"]) == allowed_actions(load_template(template))


def test_read_role_may_call_what_its_template_allows(running: Running) -> None:
    events = running.factory().client(CENTRAL, "events", "us-east-1")
    rules = events.list_rules(EventBusName=BUS)["Rules"]
    assert RULE in {rule["Name"] for rule in rules}
    management = running.config.organization.management_account_id
    organizations = running.factory().client(management, "organizations", "us-east-1")
    assert organizations.list_accounts()["Accounts"]


def _cost(running: Running, account: str) -> Any:
    ce = running.factory().client(account, "ce", "us-east-1")
    return ce.get_cost_and_usage(TimePeriod={"Start": "2026-01-01", "End": "2026-01-02"},
                                 Granularity="DAILY", Metrics=["UnblendedCost"])


def test_only_the_management_account_grants_cost_explorer_and_organizations(
    running: Running,
) -> None:
    """A member account's read role is refused what only the management account answers; the
    management account's read role (its own template) is allowed it."""
    management = running.config.organization.management_account_id
    assert "ResultsByTime" in _cost(running, management)
    calls: dict[str, Callable[[], Any]] = {
        "ce:GetCostAndUsage": lambda: _cost(running, PAYMENTS),
        "organizations:ListAccounts": lambda: running.factory().client(
            PAYMENTS, "organizations", "us-east-1").list_accounts(),
    }
    for action, call in calls.items():
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] in DENIED, action
        assert action in str(caught.value)


def _dlq_url(running: Running) -> str:
    url: str = running.org.admin.client(PAYMENTS, "sqs").get_queue_url(QueueName=DLQ)["QueueUrl"]
    return url


REFUSED: dict[str, Callable[[Running], Any]] = {
    "events:PutRule": lambda r: r.factory().client(CENTRAL, "events", "us-east-1").put_rule(
        Name="orgscope-was-here", EventBusName=BUS, ScheduleExpression="rate(1 day)"),
    # (events:DescribeRule is granted: the change feed re-reads one rule with it)
    "events:ListArchives": lambda r: r.factory().client(CENTRAL, "events", "us-east-1")
    .list_archives(),
    "sqs:ListQueues": lambda r: r.factory().client(PAYMENTS, "sqs", "us-east-1").list_queues(),
    "sqs:ReceiveMessage": lambda r: r.factory().client(PAYMENTS, "sqs", "us-east-1")
    .receive_message(QueueUrl=_dlq_url(r)),
    "cloudwatch:ListMetrics": lambda r: r.factory().client(PAYMENTS, "cloudwatch", "us-east-1")
    .list_metrics(Namespace="AWS/Events"),
}


@pytest.mark.parametrize("action", sorted(REFUSED))
def test_read_role_is_refused_what_its_template_lacks(running: Running, action: str) -> None:
    assert action not in allowed_actions(load_template(READ_ROLE_TEMPLATE))
    with pytest.raises(ClientError) as caught:
        REFUSED[action](running)
    assert caught.value.response["Error"]["Code"] in DENIED
    assert action in str(caught.value)


def test_put_rule_refused_leaves_no_rule_behind(running: Running) -> None:
    with pytest.raises(ClientError):
        REFUSED["events:PutRule"](running)
    rules = running.org.admin.client(CENTRAL, "events").list_rules(EventBusName=BUS)["Rules"]
    assert "orgscope-was-here" not in {rule["Name"] for rule in rules}


def test_heal_role_may_enable_rules_and_nothing_else(running: Running) -> None:
    events = running.factory().client(CENTRAL, "events", "us-east-1", role=_heal_role(running))
    events.enable_rule(Name=RULE, EventBusName=BUS)  # already enabled: a no-op, but allowed
    with pytest.raises(ClientError) as caught:
        events.disable_rule(Name=RULE, EventBusName=BUS)
    assert caught.value.response["Error"]["Code"] in DENIED
    with pytest.raises(ClientError) as caught:
        events.list_rules(EventBusName=BUS)
    assert caught.value.response["Error"]["Code"] in DENIED
    state = running.org.admin.client(CENTRAL, "events").describe_rule(Name=RULE, EventBusName=BUS)
    assert state["State"] == "ENABLED"


def test_heal_role_is_denied_a_rule_tagged_to_opt_out(running: Running) -> None:
    """The template's Deny on orgscope:autoheal=off holds in the simulator as in IAM."""
    account = "222222222222"
    admin = running.org.admin.client(account, "events")
    admin.disable_rule(Name=OPTED_OUT_ROUTE, EventBusName="default")
    events = running.factory().client(account, "events", "us-east-1", role=_heal_role(running))
    try:
        with pytest.raises(ClientError) as caught:
            events.enable_rule(Name=OPTED_OUT_ROUTE, EventBusName="default")
        assert caught.value.response["Error"]["Code"] in DENIED
        assert "explicit deny" in str(caught.value)
        described = events.describe_rule(Name=OPTED_OUT_ROUTE, EventBusName="default")
        assert described["State"] == "DISABLED"  # reading it back is allowed
    finally:
        admin.enable_rule(Name=OPTED_OUT_ROUTE, EventBusName="default")
