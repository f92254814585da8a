"""Reads orgscope's IAM role templates (orgscope/iam/*.yaml) so code can use what they grant.

The CloudFormation templates in orgscope/iam/ are the one statement of what orgscope's roles may do.
tests/test_iam_templates.py checks them against the code's own action lists, and the simulator
(sim/build.py) deploys their policies, so a call a template does not grant fails in the
simulator as it would in AWS.

CloudFormation YAML uses short-form intrinsic tags (``!Ref``, ``!Sub``, ``!If``, ``!GetAtt``,
...), which plain YAML loaders reject. :func:`load_template` turns each into the JSON form
CloudFormation documents: ``!Ref X`` -> ``{"Ref": "X"}``, ``!Condition X`` ->
``{"Condition": "X"}``, any other ``!Name v`` -> ``{"Fn::Name": v}``. Intrinsics are kept as
written, never evaluated.

The templates are package data (pyproject.toml's package-data), found through
importlib.resources, so an installed orgscope has them as well as a checkout: deploy them
from there (docs/iam.md says how to print their path).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

#: The templates' folder inside the installed package.
IAM_DIR = files("orgscope") / "iam"
#: The read-only role every collector and account discovery use.
READ_ROLE_TEMPLATE = IAM_DIR / "orgscope-read-role.yaml"
#: The auto-heal role, which may only re-enable EventBridge rules.
HEAL_ROLE_TEMPLATE = IAM_DIR / "orgscope-heal-role.yaml"

#: Short-form tags whose long form has no "Fn::" prefix.
_UNPREFIXED = frozenset({"Ref", "Condition"})


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that also reads CloudFormation's short-form intrinsic tags."""


def _intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    name = suffix if suffix in _UNPREFIXED else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Traversable) -> dict[str, Any]:
    """The CloudFormation template at ``path`` as a dict, intrinsics in their long form.

    Raises ValueError when the file is not a YAML mapping.
    """
    # _CfnLoader is a SafeLoader: the intrinsic tags build plain dicts, never Python objects.
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a CloudFormation template (top level is not a mapping)")
    return document


def as_list(value: Any) -> list[Any]:
    """IAM's "one or a list" fields (Statement, Action, Resource) as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def role_properties(template: dict[str, Any]) -> dict[str, Any]:
    """The Properties of the template's one ``AWS::IAM::Role``.

    Raises ValueError unless the template creates exactly one role.
    """
    roles = [
        resource
        for resource in template.get("Resources", {}).values()
        if resource.get("Type") == "AWS::IAM::Role"
    ]
    if len(roles) != 1:
        raise ValueError(f"expected exactly one AWS::IAM::Role, found {len(roles)}")
    properties: dict[str, Any] = roles[0]["Properties"]
    return properties


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement (Allow and Deny) of the role's inline policies, in template order.

    Raises ValueError when the role attaches managed policies: their actions are not in the
    template, so what it grants could not be told from it.
    """
    role = role_properties(template)
    if role.get("ManagedPolicyArns"):
        raise ValueError("the role attaches managed policies; only inline policies are read")
    return [
        statement
        for policy in as_list(role.get("Policies"))
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def allowed_actions(template: dict[str, Any]) -> set[str]:
    """The actions the role's inline policies Allow (whatever the resource or condition)."""
    return {
        action
        for statement in policy_statements(template)
        if statement["Effect"] == "Allow"
        for action in as_list(statement.get("Action"))
    }
