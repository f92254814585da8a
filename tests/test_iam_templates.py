"""The IAM templates in orgscope/iam/ grant exactly what the code calls, each in the account
where the code calls it, on the narrowest resources AWS lets a policy name; the read roles
write nothing.

A collector that starts calling a new API fails this test until the read role of every account
it runs in grants it (under the collector's own Sid), an action dropped from the code must
leave the templates too, and no member account is granted what only the management account
needs (Cost Explorer, Organizations).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from collectors.otel import OtelCollectorConfig
from heal.actions import heal_permissions
from orgscope import accounts
from orgscope.collect import Scope
from orgscope.config import AwsConfig, HealConfig
from orgscope.iam_templates import (
    CHANGE_FORWARDER_TEMPLATE,
    CHANGE_QUEUE_TEMPLATE,
    HEAL_ROLE_TEMPLATE,
    MANAGEMENT_READ_ROLE_TEMPLATE,
    READ_ROLE_TEMPLATE,
    allowed_actions,
    allows,
    as_list,
    load_template,
    policy_statements,
    read_role_template,
    role_properties,
)
from orgscope.plugins import COLLECTORS, HEAL_ACTIONS, load_config

ROOT = Path(__file__).resolve().parents[1]

# What orgscope/accounts.py calls for organization.discovery = "organizations", in the
# management account (orgscope/runner.py lists the organization from there).
DISCOVERY_ACTIONS = frozenset(accounts.DISCOVERY_ACTIONS)
DISCOVERY_SID = "DiscoveryOrganizations"

#: Which read stacks each collector scope runs under: "regional" collectors run in every
#: account, the management one included; "payer" ones only in the management account;
#: "local" ones call no AWS API.
SCOPE_STACKS: dict[str, tuple[str, ...]] = {
    "regional": ("member", "management"),
    "payer": ("management",),
    "local": (),
}
READ_STACKS = {"member": READ_ROLE_TEMPLATE, "management": MANAGEMENT_READ_ROLE_TEMPLATE}
ALL_TEMPLATES = [READ_ROLE_TEMPLATE, MANAGEMENT_READ_ROLE_TEMPLATE, HEAL_ROLE_TEMPLATE]

#: Actions granted on Resource "*", each with why nothing narrower will do (the Service
#: Authorization Reference lists no resource type for them, or only one orgscope never uses).
#: Any other action must name the resources it reads.
UNSCOPABLE = {
    "events:ListEventBuses": "a List call: no resource type",
    "events:ListRules": "a List call: no resource type",
    "cloudwatch:GetMetricData": "only the 'dataset' type, which orgscope never reads",
    "xray:GetTraceSummaries": "no resource type",
    "xray:BatchGetTraces": "no resource type",
    "ce:GetCostAndUsage": "only the 'billingview' type; orgscope reads the default view",
    "organizations:ListAccounts": "a List call: no resource type",
    "schemas:ListDiscoverers": "a List call over the account's discoverers, whose ids orgscope "
                               "cannot know before listing them",
}

#: Parameters and conditions only the management template has: the cost collector's data
#: export (a payer grant, off while ExportBucket is empty).
MANAGEMENT_ONLY_PARAMETERS = ("ExportBucket", "ExportPrefix")
MANAGEMENT_ONLY_CONDITIONS = ("ReadsDataExport",)

ACCOUNT = "111122223333"
OTHER = "444455556666"

# Verbs (the part after "service:") a read-only role may start with, and ones that write.
READ_VERBS = ("List", "Describe", "Get", "BatchGet", "Filter")
WRITE_VERBS = (
    "Put",
    "Enable",
    "Disable",
    "Delete",
    "Create",
    "Update",
    "Tag",
    "Untag",
    "Remove",
    "Attach",
    "Detach",
    "Start",
    "Stop",
    "Send",
    "Set",
    "Modify",
    "Associate",
    "Disassociate",
    "Invoke",
    "Receive",
    "Purge",
    "Change",
    "Accept",
    "Reject",
    "Activate",
    "Deactivate",
    "Run",
    "Restore",
)


# --- helpers over the parsed templates (orgscope/iam_templates.py) --------------------------


def _role(template: dict[str, Any]) -> dict[str, Any]:
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1, "each template creates exactly one role"
    return role_properties(template)


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    assert "ManagedPolicyArns" not in _role(template), (
        "permissions are inline, listed action by action"
    )
    return policy_statements(template)


def _camel(name: str) -> str:
    """Collector name -> the Sid suffix: 'cost_explorer' -> 'CostExplorer'."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _stack_actions(stack: str) -> dict[str, set[str]]:
    """Owner (a collector's Sid prefix, or discovery's) -> the actions the code calls in the
    accounts of ``stack``."""
    expected = {
        f"Collector{_camel(name)}": set(collector.iam_actions)
        for name, collector in COLLECTORS.items()
        if collector.iam_actions and stack in SCOPE_STACKS[collector.scope]
    }
    if stack == "management":
        expected[DISCOVERY_SID] = set(DISCOVERY_ACTIONS)
    return expected


def _owner(sid: str) -> str:
    """The collector (or discovery) a statement belongs to: the longest owner Sid that starts
    ``sid`` and is followed by nothing or by a capitalised word ('CollectorDlqOwnQueues')."""
    owners = [f"Collector{_camel(name)}" for name in COLLECTORS] + [DISCOVERY_SID]
    matches = [o for o in owners if sid == o or (sid.startswith(o) and sid[len(o)].isupper())]
    assert matches, f"Sid {sid!r} names no collector and is not {DISCOVERY_SID}"
    return max(matches, key=len)


def _values(template: dict[str, Any], account: str = ACCOUNT, **parameters: str) -> dict[str, str]:
    """Pseudo parameters of a stack in ``account`` and the template's defaults."""
    values = {"AWS::Partition": "aws", "AWS::AccountId": account}
    values.update({name: str(spec["Default"]) for name, spec in template["Parameters"].items()
                   if "Default" in spec})
    values.update(parameters)
    return values


@pytest.fixture(scope="module")
def read_templates() -> dict[str, dict[str, Any]]:
    return {stack: load_template(path) for stack, path in READ_STACKS.items()}


@pytest.fixture(scope="module")
def heal_template() -> dict[str, Any]:
    return load_template(HEAL_ROLE_TEMPLATE)


# --- the read roles: which account gets what -------------------------------------------------


def test_every_collector_scope_has_its_stacks() -> None:
    assert set(SCOPE_STACKS) == set(get_args(Scope)), "a new scope: say which stacks grant it"
    for collector in COLLECTORS.values():
        if not SCOPE_STACKS[collector.scope]:
            assert collector.iam_actions == (), f"{collector.name} calls AWS but runs nowhere"


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_read_stack_grants_exactly_what_runs_in_its_account(
    read_templates: dict[str, dict[str, Any]], stack: str,
) -> None:
    expected = set().union(*_stack_actions(stack).values())
    granted = allowed_actions(read_templates[stack])
    assert granted - expected == set(), "granted but never called there: remove from the template"
    assert expected - granted == set(), "called there but not granted: add to the template"


def test_each_collector_is_granted_in_the_accounts_it_runs_in(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    for collector in COLLECTORS.values():
        for stack in SCOPE_STACKS[collector.scope]:
            missing = set(collector.iam_actions) - allowed_actions(read_templates[stack])
            assert missing == set(), f"{collector.name} ({collector.scope}) in {stack}: {missing}"


def test_member_stack_lacks_what_only_the_management_account_needs(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    """Cost Explorer and Organizations are the management account's alone (the finding: they
    sat in every account's stack)."""
    regional = {a for c in COLLECTORS.values() if c.scope == "regional" for a in c.iam_actions}
    payer = {a for c in COLLECTORS.values() if c.scope == "payer" for a in c.iam_actions}
    management_only = (payer | DISCOVERY_ACTIONS) - regional
    assert {"ce:GetCostAndUsage", "organizations:ListAccounts",
            "organizations:ListTagsForResource"} <= management_only
    member = allowed_actions(read_templates["member"])
    assert member & management_only == set()
    assert not any(a.startswith(("ce:", "organizations:")) for a in member)
    assert management_only <= allowed_actions(read_templates["management"])


def test_the_management_account_gets_the_management_stack() -> None:
    management = "999988887777"
    assert read_role_template(management, management) == MANAGEMENT_READ_ROLE_TEMPLATE
    assert read_role_template(ACCOUNT, management) == READ_ROLE_TEMPLATE


def test_management_stack_is_the_member_stack_plus_management_only_grants(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    """Written twice (each stack's template is whole, so no member stack can be given the
    management grants by a parameter), held equal here: the member's parameters and
    conditions (plus the management-only ones of a payer grant: the data export's bucket),
    trust, role and policy names (an older management stack of the member template updates
    in place), and the member's statements first."""
    member, management = read_templates["member"], read_templates["management"]
    assert management["Parameters"] == {**member["Parameters"], **{
        name: management["Parameters"][name] for name in MANAGEMENT_ONLY_PARAMETERS}}
    assert management["Conditions"] == {**member["Conditions"], **{
        name: management["Conditions"][name] for name in MANAGEMENT_ONLY_CONDITIONS}}
    assert management["Resources"].keys() == member["Resources"].keys()
    member_role, management_role = _role(member), _role(management)
    for key in ("RoleName", "MaxSessionDuration", "AssumeRolePolicyDocument", "Tags"):
        assert management_role[key] == member_role[key], key
    assert [p["PolicyName"] for p in management_role["Policies"]] == \
        [p["PolicyName"] for p in member_role["Policies"]]
    member_statements = _statements(member)
    extra = _statements(management)[len(member_statements):]
    assert _statements(management)[:len(member_statements)] == member_statements
    payer_sids = {f"Collector{_camel(c.name)}" for c in COLLECTORS.values() if c.scope == "payer"}
    assert {_owner(s["Sid"]) for s in extra} == payer_sids | {DISCOVERY_SID}


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_read_stack_groups_actions_under_each_collectors_sids(
    read_templates: dict[str, dict[str, Any]], stack: str,
) -> None:
    by_owner: dict[str, set[str]] = {}
    sids = [statement["Sid"] for statement in _statements(read_templates[stack])]
    assert len(sids) == len(set(sids)), "Sids are unique"
    for statement in _statements(read_templates[stack]):
        by_owner.setdefault(_owner(statement["Sid"]), set()).update(as_list(statement["Action"]))
    assert by_owner == _stack_actions(stack)


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_read_role_only_reads(read_templates: dict[str, dict[str, Any]], stack: str) -> None:
    for statement in _statements(read_templates[stack]):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
    for action in allowed_actions(read_templates[stack]):
        service, _, verb = action.partition(":")
        assert service and verb, f"{action!r} is not service:Action"
        assert "*" not in action and "?" not in action, f"{action!r} is a wildcard"
        assert not verb.startswith(WRITE_VERBS), f"{action!r} writes"
        assert verb.startswith(READ_VERBS), f"{action!r} is not a List/Describe/Get call"


# --- the read roles: which resources ---------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_resource_star_only_where_nothing_narrower_exists(
    read_templates: dict[str, dict[str, Any]], stack: str,
) -> None:
    for statement in _statements(read_templates[stack]):
        resources = as_list(statement["Resource"])
        if resources == ["*"]:
            unscoped = set(as_list(statement["Action"])) - set(UNSCOPABLE)
            assert unscoped == set(), f"{statement['Sid']}: scope {unscoped} to its resources"
        else:
            assert "*" not in resources, f"{statement['Sid']}: '*' beside named resources"


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_otel_reads_only_the_spans_log_group(
    read_templates: dict[str, dict[str, Any]], stack: str,
) -> None:
    """FilterLogEvents on the spans log group (both ARN forms: the log-group resource the
    Service Authorization Reference names, and the ':*' one a log group's ARN is listed with)
    and on nothing else: not another log group, not one that only starts the same, not
    another account's."""
    template = read_templates[stack]
    values = _values(template)
    group = OtelCollectorConfig.model_fields["log_group"].default
    arn = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:"
    for resource in (f"{arn}{group}", f"{arn}{group}:*", f"{arn}{group}:log-stream:abc"):
        assert allows(template, "logs:FilterLogEvents", resource, values), resource
    for resource in (f"{arn}/aws/lambda/payments", f"{arn}/aws/lambda/payments:*",
                     f"{arn}{group}-archive", f"{arn}{group}-archive:*",
                     f"arn:aws:logs:eu-west-1:{OTHER}:log-group:{group}:*"):
        assert not allows(template, "logs:FilterLogEvents", resource, values), resource
    custom = _values(template, SpansLogGroup="team/otel-spans")
    assert allows(template, "logs:FilterLogEvents", f"{arn}team/otel-spans:*", custom)
    assert not allows(template, "logs:FilterLogEvents", f"{arn}{group}:*", custom)


def test_spans_log_group_parameter_is_the_otel_collectors_setting(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    field = OtelCollectorConfig.model_fields["log_group"]
    (pattern,) = [m.pattern for m in field.metadata if hasattr(m, "pattern")]
    configured = load_config(ROOT / "config.toml").collector_value("otel", "log_group", str)
    for template in read_templates.values():
        parameter = template["Parameters"]["SpansLogGroup"]
        assert parameter["Default"] == field.default == configured
        assert parameter["AllowedPattern"] == pattern


@pytest.mark.parametrize("stack", sorted(READ_STACKS))
def test_scoped_reads_reach_only_this_accounts_resources(
    read_templates: dict[str, dict[str, Any]], stack: str,
) -> None:
    template = read_templates[stack]
    values = _values(template)
    reachable = {
        "sqs:GetQueueUrl": "arn:aws:sqs:us-east-1:{}:orders-dlq",
        "sqs:GetQueueAttributes": "arn:aws:sqs:us-east-1:{}:orders-dlq",
        "events:DescribeEventBus": "arn:aws:events:us-east-1:{}:event-bus/central-bus",
        "events:ListTargetsByRule": "arn:aws:events:us-east-1:{}:rule/central-bus/orders",
        "events:ListTagsForResource": "arn:aws:events:us-east-1:{}:rule/orders",
    }
    for action, resource in reachable.items():
        assert allows(template, action, resource.format(ACCOUNT), values), action
        assert not allows(template, action, resource.format(OTHER), values), action
    assert not allows(template, "sqs:ReceiveMessage",
                      f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders-dlq", values)


def test_discovery_reads_tags_of_the_organizations_accounts_only(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    template = read_templates["management"]
    values = _values(template)
    tags = "organizations:ListTagsForResource"
    account = f"arn:aws:organizations::{ACCOUNT}:account/o-a1b2c3d4e5/{OTHER}"
    assert allows(template, tags, account, values)
    for resource in (f"arn:aws:organizations::{ACCOUNT}:root/o-a1b2c3d4e5/r-ab12",
                     f"arn:aws:organizations::{ACCOUNT}:ou/o-a1b2c3d4e5/ou-ab12-cdef5678",
                     f"arn:aws:organizations::{OTHER}:account/o-zz9y8x7w6v/{ACCOUNT}"):
        assert not allows(template, tags, resource, values), resource
    assert allows(template, "organizations:ListAccounts", "*", values)


def test_data_export_reads_only_the_exports_folder(
    read_templates: dict[str, dict[str, Any]],
) -> None:
    """s3:ListBucket on the export's bucket and s3:GetObject under its folder, behind the
    ExportBucket parameter (no statement while it is empty); nothing in the member stack."""
    template = read_templates["management"]
    values = _values(template, ExportBucket="payer-exports", ExportPrefix="cur/focus")
    assert allows(template, "s3:ListBucket", "arn:aws:s3:::payer-exports", values)
    assert allows(template, "s3:GetObject",
                  "arn:aws:s3:::payer-exports/cur/focus/data/BILLING_PERIOD=2024-02/x.parquet",
                  values)
    for resource in ("arn:aws:s3:::payer-exports/other/x.parquet",
                     "arn:aws:s3:::other-bucket/cur/focus/x.parquet"):
        assert not allows(template, "s3:GetObject", resource, values), resource
    assert not allows(template, "s3:ListBucket", "arn:aws:s3:::other-bucket", values)
    conditional = [s for policy in _role(template)["Policies"]
                   for s in policy["PolicyDocument"]["Statement"] if "Fn::If" in s]
    assert {c["Fn::If"][1]["Sid"] for c in conditional} == {
        "CollectorCostExportBucket", "CollectorCostExportObjects"}
    assert all(c["Fn::If"][0] == "ReadsDataExport" for c in conditional)
    assert template["Conditions"]["ReadsDataExport"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ExportBucket"}, ""]}]}
    assert not any(a.startswith("s3:") for a in allowed_actions(read_templates["member"]))


def test_allows_answers_only_for_what_it_can_evaluate(heal_template: dict[str, Any]) -> None:
    """A Deny or a Condition would change the answer: allows() says so instead of guessing."""
    with pytest.raises(ValueError, match="only plain Allow"):
        allows(heal_template, "events:EnableRule", "arn:aws:events:us-east-1:1:rule/x", {})
    member = load_template(READ_ROLE_TEMPLATE)
    with pytest.raises(ValueError, match="SpansLogGroup"):
        allows(member, "logs:FilterLogEvents", "arn:aws:logs:us-east-1:1:log-group:x",
               {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT})


# --- the heal role ---------------------------------------------------------------------------


def test_heal_role_grants_exactly_what_auto_heal_calls(heal_template: dict[str, Any]) -> None:
    """heal/actions.py declares every call it makes (ACTIONS); the template allows those."""
    assert all(action.permissions for action in HEAL_ACTIONS.values()), "an action declares no IAM"
    granted = allowed_actions(heal_template)
    expected = set(heal_permissions())
    assert granted - expected == set(), "granted but never called: remove from the template"
    assert expected - granted == set(), "called but not granted: add to the template"
    assert expected == {"events:EnableRule", "events:DescribeRule"}


def test_heal_role_may_only_enable_rules(heal_template: dict[str, Any]) -> None:
    writes = {a for a in allowed_actions(heal_template)
              if not a.partition(":")[2].startswith(READ_VERBS)}
    assert writes == {"events:EnableRule"}
    for statement in _statements(heal_template):
        assert statement["Effect"] in ("Allow", "Deny")
        assert "NotAction" not in statement and "NotResource" not in statement
    allow = next(s for s in _statements(heal_template) if s["Effect"] == "Allow")
    assert allow["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:*:${AWS::AccountId}:rule/${RulePattern}"
    }
    assert heal_template["Parameters"]["RulePattern"]["Default"] == "*"


def test_heal_role_denies_rules_that_opted_out(heal_template: dict[str, Any]) -> None:
    denies = [s for s in _statements(heal_template) if s["Effect"] == "Deny"]
    assert len(denies) == 1
    deny = denies[0]
    assert as_list(deny["Action"]) == ["events:EnableRule"]
    assert deny["Resource"] == "*"
    tag_key = HealConfig.model_fields["opt_out_tag"].default
    configured = load_config(ROOT / "config.toml").heal.opt_out_tag
    assert configured == tag_key
    condition = deny["Condition"]["StringEqualsIgnoreCase"]
    assert condition == {f"aws:ResourceTag/{tag_key}": "off"}


# --- every role ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_trust_requires_the_external_id(path: Path) -> None:
    template = load_template(path)
    trust = as_list(_role(template)["AssumeRolePolicyDocument"]["Statement"])
    assert len(trust) == 1
    statement = trust[0]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert statement["Principal"]["AWS"] == {
        "Fn::If": [
            "TrustOnePrincipal",
            {"Ref": "TrustedPrincipalArn"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${MonitoringAccountId}:root"},
        ]
    }
    external_id = template["Parameters"]["ExternalId"]
    assert external_id["NoEcho"] is True
    assert "Default" not in external_id


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: p.stem)
def test_templates_are_stackset_ready(path: Path) -> None:
    """No account ids, and the same parameters everywhere; RoleArn is an output."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\\)\b\d{12}\b", text), "an account id is hard-coded"
    template = load_template(path)
    assert {"MonitoringAccountId", "ExternalId", "RoleName", "MaxSessionDuration"} <= set(
        template["Parameters"]
    )
    assert "RoleArn" in template["Outputs"]
    assert _role(template)["RoleName"] == {"Ref": "RoleName"}


def test_template_defaults_match_the_config() -> None:
    config = load_config(ROOT / "config.toml")
    reads = [load_template(path)["Parameters"] for path in READ_STACKS.values()]
    heal = load_template(HEAL_ROLE_TEMPLATE)["Parameters"]
    for read in reads:
        assert read["RoleName"]["Default"] == AwsConfig.model_fields["read_role_name"].default
        assert read["RoleName"]["Default"] == config.aws.read_role_name
    assert heal["RoleName"]["Default"] == HealConfig.model_fields["role_name"].default
    assert heal["RoleName"]["Default"] == config.heal.role_name
    for parameters in (*reads, heal):
        assert parameters["MaxSessionDuration"]["Default"] >= config.aws.session_duration_s


# --- cfn-lint --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*ALL_TEMPLATES, CHANGE_FORWARDER_TEMPLATE,
                                  CHANGE_QUEUE_TEMPLATE], ids=lambda p: p.stem)
def test_cfn_lint_is_clean(path: Path) -> None:
    """cfn-lint (pulled in by moto) finds nothing: no errors, warnings or informational notes."""
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(
        path,
        config={"regions": ["us-east-1", "eu-west-1", "ap-southeast-1"], "include_checks": ["I"]},
    )
    assert [str(match) for match in matches] == []
