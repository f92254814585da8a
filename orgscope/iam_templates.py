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

The read role comes in two templates: :data:`READ_ROLE_TEMPLATE` for the member accounts (a
service-managed StackSet) and :data:`MANAGEMENT_READ_ROLE_TEMPLATE` for the management account,
which alone is granted Cost Explorer and Organizations; :func:`read_role_template` says which
one an account gets. :func:`allows` evaluates a template's Allow statements for one action on
one resource ARN, resource patterns included, for tests that check what a role may reach.

The templates are package data (pyproject.toml's package-data), found through
importlib.resources, so an installed orgscope has them as well as a checkout: deploy them
from there (docs/iam.md says how to print their path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

#: The templates' folder inside the installed package.
IAM_DIR = files("orgscope") / "iam"
#: The read-only role of every member account: the collectors that run in every account.
READ_ROLE_TEMPLATE = IAM_DIR / "orgscope-read-role.yaml"
#: The read-only role of the management account: the member role's grants, plus Cost Explorer
#: (collectors of scope "payer") and Organizations (account discovery).
MANAGEMENT_READ_ROLE_TEMPLATE = IAM_DIR / "orgscope-management-read-role.yaml"
#: The auto-heal role, which may only re-enable EventBridge rules.
HEAL_ROLE_TEMPLATE = IAM_DIR / "orgscope-heal-role.yaml"
#: Change events, every account's side: the rule forwarding rule and bus changes (no role of
#: orgscope's; docs/changes.md).
CHANGE_FORWARDER_TEMPLATE = IAM_DIR / "orgscope-change-forwarder.yaml"
#: Change events, the monitoring account's side: the change bus, its rule, the queue and its
#: dead-letter queue, and the policy that lets orgscope read the queue.
CHANGE_QUEUE_TEMPLATE = IAM_DIR / "orgscope-change-queue.yaml"

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


def _granted(statement: dict[str, Any]) -> dict[str, Any] | None:
    """A statement, or the one behind ``Fn::If [condition, statement, AWS::NoValue]`` (a
    grant a parameter turns on: read as granted); None for anything else under Fn::If."""
    branches = statement.get("Fn::If")
    if branches is None:
        return statement
    if isinstance(branches, list) and len(branches) == 3 and isinstance(branches[1], dict) \
            and branches[2] == {"Ref": "AWS::NoValue"}:
        chosen: dict[str, Any] = branches[1]
        return chosen
    return None


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement (Allow and Deny) of the role's inline policies, in template order; a
    statement a parameter turns on (``Fn::If [condition, statement, AWS::NoValue]``) as if
    it were on.

    Raises ValueError when the role attaches managed policies: their actions are not in the
    template, so what it grants could not be told from it, or when a statement is another
    ``Fn::If``.
    """
    role = role_properties(template)
    if role.get("ManagedPolicyArns"):
        raise ValueError("the role attaches managed policies; only inline policies are read")
    statements = []
    for policy in as_list(role.get("Policies")):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            granted = _granted(statement)
            if granted is None:
                raise ValueError(f"a statement's Fn::If is not [condition, statement, "
                                 f"AWS::NoValue]: {statement!r}")
            statements.append(granted)
    return statements


def allowed_actions(template: dict[str, Any]) -> set[str]:
    """The actions the role's inline policies Allow (whatever the resource or condition)."""
    return {
        action
        for statement in policy_statements(template)
        if statement["Effect"] == "Allow"
        for action in as_list(statement.get("Action"))
    }


def read_role_template(account_id: str, management_account_id: str) -> Traversable:
    """The read role template deployed in ``account_id``: the management template in the
    management account, the member template everywhere else."""
    if account_id == management_account_id:
        return MANAGEMENT_READ_ROLE_TEMPLATE
    return READ_ROLE_TEMPLATE


_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def resolve(value: Any, values: Mapping[str, str]) -> str:
    """A string, ``{"Ref": name}`` or one-string ``{"Fn::Sub": text}`` with ``values`` put in
    (parameters and pseudo parameters such as ``AWS::AccountId``, by name).

    Raises ValueError for any other intrinsic or a name ``values`` lacks.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" and isinstance(argument, str):
            if argument not in values:
                raise ValueError(f"no value for {argument!r}")
            return values[argument]
        if name == "Fn::Sub" and isinstance(argument, str):
            missing = sorted(set(_SUB_VARIABLE.findall(argument)) - set(values))
            if missing:
                raise ValueError(f"no value for {', '.join(missing)} in {argument!r}")
            return _SUB_VARIABLE.sub(lambda match: values[match.group(1)], argument)
    raise ValueError(f"cannot resolve {value!r}: only strings, Ref and a one-string Fn::Sub")


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """IAM's ``*`` (any run of characters, ``:`` and ``/`` included) and ``?`` (one)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def allows(template: dict[str, Any], action: str, resource: str,
           values: Mapping[str, str]) -> bool:
    """Whether the role's inline policies Allow ``action`` on the ARN ``resource``, with the
    template's Resource patterns resolved from ``values`` (see :func:`resolve`).

    Actions match case-insensitively, resources case-sensitively, both with IAM's wildcards.
    Raises ValueError when the policies hold anything but plain Allow statements (a Deny, a
    Condition, a NotAction or a NotResource): this answers for those only.
    """
    statements = policy_statements(template)
    for statement in statements:
        if statement.get("Effect") != "Allow" or \
                {"Condition", "NotAction", "NotResource"} & set(statement):
            raise ValueError(f"statement {statement.get('Sid')!r}: only plain Allow "
                             "statements are evaluated")
    allowed = False
    for statement in statements:
        actions = as_list(statement.get("Action"))
        if not any(_wildcard(a, ignore_case=True).fullmatch(action) for a in actions):
            continue
        patterns = [resolve(r, values) for r in as_list(statement.get("Resource"))]
        if any(_wildcard(p, ignore_case=False).fullmatch(resource) for p in patterns):
            allowed = True
    return allowed
