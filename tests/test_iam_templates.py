"""The IAM templates in orgscope/iam/ grant exactly what the code calls; the read role writes
nothing.

A collector that starts calling a new API fails this test until the read role grants it (under
the collector's own Sid), and an action dropped from the code must leave the template too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from heal.actions import heal_permissions
from orgscope import accounts
from orgscope.config import AwsConfig, HealConfig
from orgscope.iam_templates import (
    HEAL_ROLE_TEMPLATE,
    READ_ROLE_TEMPLATE,
    allowed_actions,
    as_list,
    load_template,
    policy_statements,
    role_properties,
)
from orgscope.plugins import COLLECTORS, HEAL_ACTIONS, load_config, read_actions

ROOT = Path(__file__).resolve().parents[1]

# What orgscope/accounts.py calls for organization.discovery = "organizations".
DISCOVERY_ACTIONS = frozenset(accounts.DISCOVERY_ACTIONS)
DISCOVERY_SID = "DiscoveryOrganizations"

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


@pytest.fixture(scope="module")
def read_template() -> dict[str, Any]:
    return load_template(READ_ROLE_TEMPLATE)


@pytest.fixture(scope="module")
def heal_template() -> dict[str, Any]:
    return load_template(HEAL_ROLE_TEMPLATE)


# --- the read role ---------------------------------------------------------------------------


def test_read_role_grants_exactly_what_the_code_calls(read_template: dict[str, Any]) -> None:
    expected = set(read_actions()) | DISCOVERY_ACTIONS
    granted = allowed_actions(read_template)
    assert granted - expected == set(), "granted but never called: remove from the template"
    assert expected - granted == set(), "called but not granted: add to the template"


def test_read_role_groups_actions_under_one_sid_per_collector(
    read_template: dict[str, Any],
) -> None:
    by_sid = {
        statement["Sid"]: set(as_list(statement["Action"]))
        for statement in _statements(read_template)
    }
    expected = {
        f"Collector{_camel(name)}": set(collector.iam_actions)
        for name, collector in COLLECTORS.items()
        if collector.iam_actions
    }
    expected[DISCOVERY_SID] = set(DISCOVERY_ACTIONS)
    assert by_sid == expected


def test_read_role_only_reads(read_template: dict[str, Any]) -> None:
    for statement in _statements(read_template):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
    for action in allowed_actions(read_template):
        service, _, verb = action.partition(":")
        assert service and verb, f"{action!r} is not service:Action"
        assert "*" not in action and "?" not in action, f"{action!r} is a wildcard"
        assert not verb.startswith(WRITE_VERBS), f"{action!r} writes"
        assert verb.startswith(READ_VERBS), f"{action!r} is not a List/Describe/Get call"


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


# --- both roles ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [READ_ROLE_TEMPLATE, HEAL_ROLE_TEMPLATE], ids=lambda p: p.stem)
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


@pytest.mark.parametrize("path", [READ_ROLE_TEMPLATE, HEAL_ROLE_TEMPLATE], ids=lambda p: p.stem)
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
    read = load_template(READ_ROLE_TEMPLATE)["Parameters"]
    heal = load_template(HEAL_ROLE_TEMPLATE)["Parameters"]
    assert read["RoleName"]["Default"] == AwsConfig.model_fields["read_role_name"].default
    assert read["RoleName"]["Default"] == config.aws.read_role_name
    assert heal["RoleName"]["Default"] == HealConfig.model_fields["role_name"].default
    assert heal["RoleName"]["Default"] == config.heal.role_name
    for parameters in (read, heal):
        assert parameters["MaxSessionDuration"]["Default"] >= config.aws.session_duration_s


# --- cfn-lint --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [READ_ROLE_TEMPLATE, HEAL_ROLE_TEMPLATE], ids=lambda p: p.stem)
def test_cfn_lint_is_clean(path: Path) -> None:
    """cfn-lint (pulled in by moto) finds nothing: no errors, warnings or informational notes."""
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(
        path,
        config={"regions": ["us-east-1", "eu-west-1", "ap-southeast-1"], "include_checks": ["I"]},
    )
    assert [str(match) for match in matches] == []
