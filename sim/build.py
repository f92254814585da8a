"""Deploys the QuickGrocer organization through the AWS APIs, as its platform team would.

Per account: orgscope's read role and heal role, each allowed exactly the actions its template
in orgscope/iam/ allows (so a call the template lacks is refused here as in AWS) and denied what it
denies (the heal role's Deny on the opt-out tag, which the gate evaluates), trusting the
monitoring account with an ExternalId condition only when the configured environment
variable is set. The read role's template is the one the account would get in AWS
(``orgscope.iam_templates.read_role_template``): the management template, with Cost Explorer
and Organizations, in the management account; the member template everywhere else. The gate
checks actions, not resources: what the templates scope (the spans log group, the account's
own queues) is checked by tests/test_iam_templates.py.

In the event-bus account: the central bus, a bus policy letting each producer account
PutEvents, and one rule per route forwarding to the consumer account's default bus. In
each consumer account: a bus policy letting the event-bus account deliver, and one rule per
route delivering to an SQS queue with a RetryPolicy and an SQS dead-letter queue. In the
management account: the organization and its member accounts, tagged Team and CostCenter (moto
picks the member account ids at random, so they differ from config.toml's).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Any

from orgscope.config import AccountConfig, Config
from orgscope.iam_templates import (
    CHANGE_FORWARDER_TEMPLATE,
    CHANGE_QUEUE_TEMPLATE,
    HEAL_ROLE_TEMPLATE,
    MANAGEMENT_READ_ROLE_TEMPLATE,
    READ_ROLE_TEMPLATE,
    allowed_actions,
    load_template,
    policy_statements,
    read_role_template,
)
from sim.admin import AdminSessions
from sim.topology import ROUTES, STREAMS, Route, dlq_name, queue_name

log = logging.getLogger(__name__)

READ_POLICY = "orgscope-read"
HEAL_POLICY = "orgscope-heal"
FORWARDER_ROLE = "central-bus-forwarder"
FORWARDING_DLQ = "central-bus-forwarding-dlq"
#: Change events (orgscope/iam/orgscope-change-*.yaml, at their templates' defaults).
CHANGE_BUS = "orgscope-changes"
CHANGE_QUEUE = "orgscope-changes"
CHANGE_FORWARDER_RULE = "orgscope-change-forwarder"
CHANGE_QUEUE_RULE = "orgscope-changes-to-queue"
CHANGE_FORWARDER_ROLE = "orgscope-change-forwarder"


@dataclass
class Deployment:
    """What was built: rule and queue addresses the traffic model and faults refer to."""

    central_account: str
    central_bus: str
    producers: dict[str, str] = field(default_factory=dict)  # account id -> statement id
    dlq_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    rules: list[tuple[str, str, str]] = field(default_factory=list)  # (account, bus, rule)
    organization_accounts: dict[str, str] = field(default_factory=dict)  # name -> moto id
    #: The change queue's URL ([changes] queue_url), when change events were deployed.
    change_queue_url: str = ""
    #: The change-event rules (account, bus, rule): the forwarders and the queue's rule.
    change_rules: list[tuple[str, str, str]] = field(default_factory=list)


def template_actions(path: Traversable) -> list[str]:
    """The actions the role template at ``path`` allows, sorted (deployed with Resource "*":
    the gate checks actions, not resources)."""
    return sorted(allowed_actions(load_template(path)))


def template_denies(path: Traversable) -> list[dict[str, Any]]:
    """The template's Deny statements (the heal role's on the opt-out tag), Resource "*";
    the gate evaluates their tag conditions."""
    return [{"Effect": "Deny", "Action": statement["Action"], "Resource": "*",
             **({"Condition": statement["Condition"]} if "Condition" in statement else {})}
            for statement in policy_statements(load_template(path))
            if statement.get("Effect") == "Deny"]


def policy_document(actions: list[str] | tuple[str, ...],
                    denies: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": sorted(actions), "Resource": "*"}, *(denies or [])]})


def trust_document(monitoring_account: str, external_id: str | None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{monitoring_account}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _tags(account: AccountConfig, service: str, owner: str) -> list[dict[str, str]]:
    values = {"Team": account.team, "Service": service, "Environment": account.environment,
              "CostCenter": account.cost_center or "unassigned", "Owner": owner}
    return [{"Key": k, "Value": v} for k, v in values.items()]


def _template_pattern(path: Traversable) -> dict[str, Any]:
    """The EventPattern of the one rule a change-event template creates."""
    (rule,) = [resource["Properties"] for resource in load_template(path)["Resources"].values()
               if resource["Type"] == "AWS::Events::Rule"]
    pattern: dict[str, Any] = rule["EventPattern"]
    return pattern


class Builder:
    """Creates the organization's resources through ``admin`` (idempotent where AWS is)."""

    def __init__(self, config: Config, admin: AdminSessions) -> None:
        self.config = config
        self.admin = admin
        self.region = config.aws.regions[0]
        self.by_name = {a.name: a for a in config.accounts}
        self._read_actions = {template.name: template_actions(template) for template in
                              (READ_ROLE_TEMPLATE, MANAGEMENT_READ_ROLE_TEMPLATE)}
        self.heal_actions = template_actions(HEAL_ROLE_TEMPLATE)
        self.heal_denies = template_denies(HEAL_ROLE_TEMPLATE)

    # --- orgscope's roles -------------------------------------------------------------------

    @property
    def read_actions(self) -> list[str]:
        """Every action the read role has in some account, sorted."""
        return sorted({action for actions in self._read_actions.values() for action in actions})

    def read_actions_for(self, account_id: str) -> list[str]:
        """The actions of the read role's template for ``account_id``, sorted: the management
        template's in the management account, the member template's elsewhere."""
        management = self.config.organization.management_account_id
        return self._read_actions[read_role_template(account_id, management).name]

    def ensure_read_role(self, account_id: str, without: Sequence[str] = ()) -> None:
        """Create the read role (or restore its policy) in ``account_id`` from that account's
        template (:meth:`read_actions_for`); ``without``: actions of the template its policy
        leaves out (a role deployed before a collector needed them)."""
        self._ensure_role(account_id, self.config.aws.read_role_name,
                          os.environ.get(self.config.aws.external_id_env) or None,
                          READ_POLICY,
                          [a for a in self.read_actions_for(account_id) if a not in without])

    def ensure_heal_role(self, account_id: str) -> None:
        self._ensure_role(account_id, self.config.heal.role_name,
                          os.environ.get(self.config.heal.external_id_env) or None,
                          HEAL_POLICY, self.heal_actions, denies=self.heal_denies)

    def _ensure_role(self, account_id: str, role: str, external_id: str | None,
                     policy_name: str, actions: list[str], *,
                     denies: list[dict[str, Any]] | None = None) -> None:
        iam = self.admin.client(account_id, "iam")
        trust = trust_document(self.config.organization.monitoring_account_id, external_id)
        try:
            iam.get_role(RoleName=role)
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust,
                            Description="orgscope (created by the QuickGrocer simulator)",
                            Tags=[{"Key": "Owner", "Value": "platform"}])
        iam.put_role_policy(RoleName=role, PolicyName=policy_name,
                            PolicyDocument=policy_document(actions, denies))

    def delete_read_role(self, account_id: str) -> None:
        """Delete the read role: inline policies first, as IAM requires."""
        iam = self.admin.client(account_id, "iam")
        role = self.config.aws.read_role_name
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role, PolicyName=name)
        iam.delete_role(RoleName=role)

    def strip_read_role(self, account_id: str) -> None:
        """Keep the read role but delete every policy it has."""
        iam = self.admin.client(account_id, "iam")
        role = self.config.aws.read_role_name
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role, PolicyName=name)

    # --- the organization -------------------------------------------------------------------

    def build(self, *, change_events: bool = False) -> Deployment:
        """Build the organization; with ``change_events``, last, the change-event rules and
        queue of orgscope/iam/orgscope-change-*.yaml (:meth:`deploy_change_events`)."""
        org = self.config.organization
        deployment = Deployment(org.central_bus_account_id, org.central_bus_name)
        for account in self.config.accounts:
            self.ensure_read_role(account.id)
            self.ensure_heal_role(account.id)
        self._organization(deployment)
        self._central_bus(deployment)
        for route in ROUTES:
            self._route(deployment, route)
        if change_events:
            self.deploy_change_events(deployment)
        log.info("built %d accounts, %d rules, %d DLQs", len(self.config.accounts),
                 len(deployment.rules), len(deployment.dlq_urls))
        return deployment

    def _organization(self, deployment: Deployment) -> None:
        management = self.config.organization.management_account_id
        organizations = self.admin.client(management, "organizations")
        organizations.create_organization(FeatureSet="ALL")
        for account in self.config.accounts:
            if account.id == management:
                continue
            created = organizations.create_account(
                Email=f"aws+{account.name}@quickgrocer.example", AccountName=account.name,
                Tags=[{"Key": "Team", "Value": account.team},
                      {"Key": "CostCenter", "Value": account.cost_center or "unassigned"},
                      {"Key": "Environment", "Value": account.environment}],
            )["CreateAccountStatus"]
            deployment.organization_accounts[account.name] = created.get("AccountId", "")

    def _central_bus(self, deployment: Deployment) -> None:
        central = deployment.central_account
        events = self.admin.client(central, "events")
        events.create_event_bus(Name=deployment.central_bus, Tags=[
            {"Key": "Team", "Value": "platform"}, {"Key": "Service", "Value": "central-bus"}])
        producers = sorted({self.by_name[s.account].id for s in STREAMS
                            if s.account in self.by_name} - {central})
        for producer in producers:
            sid = f"allow-putevents-{producer}"
            events.put_permission(EventBusName=deployment.central_bus, Action="events:PutEvents",
                                  Principal=producer, StatementId=sid)
            deployment.producers[producer] = sid
        iam = self.admin.client(central, "iam")
        iam.create_role(RoleName=FORWARDER_ROLE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName=FORWARDER_ROLE, PolicyName="forward",
                            PolicyDocument=policy_document(["events:PutEvents"]))
        self._queue(deployment, central, FORWARDING_DLQ, [], dlq=True)

    def deploy_change_events(self, deployment: Deployment) -> str:
        """What orgscope-change-queue.yaml creates in the monitoring account (the change bus
        admitting the organization, the queue and its DLQ, the rule between them) and what
        orgscope-change-forwarder.yaml creates in every account (the forwarding rule on the
        default bus, with the templates' own pattern, and its role); returns the queue URL.
        Built after everything else, so the build's own changes are not in the queue.

        The queue side goes in the account orgscope's base credentials belong to (it reads
        the queue with them, as in AWS): in the simulator that is moto's default account, not
        ``monitoring_account_id`` (a simulator-only difference, docs/simulator.md)."""
        monitoring = str(self.admin.base_client("sts").get_caller_identity()["Account"])
        region = self.region
        management = self.config.organization.management_account_id
        org_id = self.admin.client(management, "organizations").describe_organization()[
            "Organization"]["Id"]
        events = self.admin.client(monitoring, "events")
        bus_arn = str(events.create_event_bus(Name=CHANGE_BUS)["EventBusArn"])
        events.put_permission(EventBusName=CHANGE_BUS, Action="events:PutEvents",
                              Principal="*", StatementId="orgscope-organization-forwards-changes",
                              Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID",
                                         "Value": org_id})
        sqs = self.admin.client(monitoring, "sqs")
        dlq_arn = f"arn:aws:sqs:{region}:{monitoring}:{CHANGE_QUEUE}-dlq"
        sqs.create_queue(QueueName=f"{CHANGE_QUEUE}-dlq")
        rule_arn = f"arn:aws:events:{region}:{monitoring}:rule/{CHANGE_BUS}/{CHANGE_QUEUE_RULE}"
        queue_arn = f"arn:aws:sqs:{region}:{monitoring}:{CHANGE_QUEUE}"
        url = str(sqs.create_queue(QueueName=CHANGE_QUEUE, Attributes={
            "VisibilityTimeout": "120",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
            "Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": "ChangeRuleSends", "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}),
        })["QueueUrl"])
        pattern = json.dumps(_template_pattern(CHANGE_QUEUE_TEMPLATE))
        events.put_rule(Name=CHANGE_QUEUE_RULE, EventBusName=CHANGE_BUS, EventPattern=pattern,
                        State="ENABLED",
                        Description="orgscope change events from every account, into the queue")
        events.put_targets(Rule=CHANGE_QUEUE_RULE, EventBusName=CHANGE_BUS, Targets=[{
            "Id": "orgscope-change-queue", "Arn": queue_arn,
            "DeadLetterConfig": {"Arn": dlq_arn}}])
        deployment.change_rules.append((monitoring, CHANGE_BUS, CHANGE_QUEUE_RULE))
        forwarder = json.dumps(_template_pattern(CHANGE_FORWARDER_TEMPLATE))
        for account in self.config.accounts:
            iam = self.admin.client(account.id, "iam")
            role_arn = iam.create_role(RoleName=CHANGE_FORWARDER_ROLE, AssumeRolePolicyDocument=(
                json.dumps({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]})))["Role"]["Arn"]
            iam.put_role_policy(RoleName=CHANGE_FORWARDER_ROLE,
                                PolicyName="orgscope-change-forwarding",
                                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                    {"Effect": "Allow", "Action": "events:PutEvents",
                                     "Resource": bus_arn}]}))
            account_events = self.admin.client(account.id, "events")
            account_events.put_rule(
                Name=CHANGE_FORWARDER_RULE, EventBusName="default", EventPattern=forwarder,
                State="ENABLED",
                Description="orgscope change events (rule and bus changes) to the monitoring "
                            "account")
            account_events.put_targets(Rule=CHANGE_FORWARDER_RULE, EventBusName="default",
                                       Targets=[{"Id": "orgscope-change-bus", "Arn": bus_arn,
                                                 "RoleArn": role_arn}])
            deployment.change_rules.append((account.id, "default", CHANGE_FORWARDER_RULE))
        deployment.change_queue_url = url
        log.info("change events: %d forwarding rules -> %s -> %s", len(self.config.accounts),
                 bus_arn, url)
        return url

    def _queue(self, deployment: Deployment, account_id: str, name: str,
               tags: list[dict[str, str]], dlq: bool = False) -> str:
        sqs = self.admin.client(account_id, "sqs")
        url = str(sqs.create_queue(QueueName=name, tags={t["Key"]: t["Value"] for t in tags}
                                   )["QueueUrl"])
        arn = f"arn:aws:sqs:{self.region}:{account_id}:{name}"
        if dlq:
            deployment.dlq_urls[arn] = url
        return arn

    def _route(self, deployment: Deployment, route: Route) -> None:
        consumer = self.by_name.get(route.consumer)
        if consumer is None:
            log.info("route %s skipped: no account named %s", route.name, route.consumer)
            return
        central = deployment.central_account
        region = self.region
        tags = [*_tags(consumer, route.service, route.owner),
                *({"Key": k, "Value": v} for k, v in route.tags.items())]
        pattern = json.dumps(route.pattern)
        # Consumer side: its default bus admits the central account; rule -> queue + DLQ.
        events = self.admin.client(consumer.id, "events")
        if consumer.id != central:
            events.put_permission(EventBusName="default", Action="events:PutEvents",
                                  Principal=central, StatementId=f"allow-central-{central}")
        queue_arn = self._queue(deployment, consumer.id, queue_name(route), tags)
        dlq_arn = self._queue(deployment, consumer.id, dlq_name(route), tags, dlq=True)
        rule_arn = events.put_rule(Name=route.name, EventPattern=pattern, State=route.state,
                                   Description=route.description, EventBusName="default",
                                   Tags=tags)["RuleArn"]
        events.put_targets(Rule=route.name, EventBusName="default", Targets=[{
            "Id": "queue", "Arn": queue_arn,
            "RetryPolicy": {"MaximumRetryAttempts": route.retry_attempts,
                            "MaximumEventAgeInSeconds": route.max_event_age_s},
            "DeadLetterConfig": {"Arn": dlq_arn}}])
        log.debug("rule %s in %s -> %s", rule_arn, consumer.id, queue_arn)
        deployment.rules.append((consumer.id, "default", route.name))
        # Central side: forward to the consumer's default bus.
        central_events = self.admin.client(central, "events")
        platform = self.by_name.get("event-bus") or consumer
        central_events.put_rule(
            Name=route.name, EventPattern=pattern, State=route.state,
            Description=f"{route.description} (to {route.consumer})",
            EventBusName=deployment.central_bus,
            Tags=[*_tags(platform, "central-bus", "platform-oncall@quickgrocer.example"),
                  *({"Key": k, "Value": v} for k, v in route.tags.items())],
        )
        central_events.put_targets(Rule=route.name, EventBusName=deployment.central_bus, Targets=[{
            "Id": f"to-{route.consumer}",
            "Arn": f"arn:aws:events:{region}:{consumer.id}:event-bus/default",
            "RoleArn": f"arn:aws:iam::{central}:role/{FORWARDER_ROLE}",
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
            "DeadLetterConfig": {
                "Arn": f"arn:aws:sqs:{region}:{central}:{FORWARDING_DLQ}"}}])
        deployment.rules.append((central, deployment.central_bus, route.name))
