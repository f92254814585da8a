"""What auto-heal may do to AWS: each action bundles its policy, its executor and its IAM
permissions, so a new action is one object here (docs/architecture.md, "Where does X go").

* ``plan``: the pure policy: from :class:`heal.policy.HealInputs` and the config, a
  :class:`heal.policy.Plan` whose decisions are this action's name or ``skip``;
* ``execute``: the executor: given a client of ``service`` in the rule's account and region
  (through the heal role) and the rule's key, it acts and verifies, returning an
  :class:`Outcome`; AWS errors are raised for :mod:`heal.run` to record;
* ``permissions``: every IAM action the executor calls. tests/test_iam_templates.py holds
  their union (:func:`heal_permissions`) equal to what the heal role's template allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from heal.policy import ENABLE, HealInputs, Plan, RuleKey, plan, rule_facts
from orgscope.aws import describe_error
from orgscope.config import Config


@dataclass(frozen=True)
class Outcome:
    """What became of one decision: the ``heal_actions.result`` and a note for the reason."""

    result: str
    note: str


class Planner(Protocol):
    """A heal action's policy: pure, from the store's frames to decisions."""

    def __call__(self, inputs: HealInputs, config: Config, *, now: datetime,
                 dry_run: bool) -> Plan: ...


#: A heal action's executor: (client of the action's service, the rule) -> outcome.
Executor = Callable[[Any, RuleKey], Outcome]


@dataclass(frozen=True)
class HealAction:
    """One thing auto-heal does to AWS: when (``plan``), how (``execute``, with a ``service``
    client through the heal role) and with which IAM actions (``permissions``)."""

    name: str
    description: str
    service: str
    permissions: tuple[str, ...]
    plan: Planner
    execute: Executor


def enable_rule(events: Any, bus: str, rule: str, *, attempts: int = 3,
                delay_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """EventBridge EnableRule, then DescribeRule until it reads ENABLED (``attempts`` reads
    ``delay_s`` apart: EventBridge is eventually consistent). Raises the client's errors from
    EnableRule; a failing DescribeRule gives ``not-verified``."""
    events.enable_rule(Name=rule, EventBusName=bus)
    state = "unknown"
    for attempt in range(attempts):
        if attempt:
            sleep(delay_s)
        try:
            state = str(events.describe_rule(Name=rule, EventBusName=bus).get("State", ""))
        except (ClientError, BotoCoreError) as error:
            return Outcome("not-verified", f"EnableRule done; {describe_error(error)}")
        if state.startswith("ENABLED"):
            return Outcome("enabled", f"EnableRule done; DescribeRule says {state}")
    return Outcome("not-verified", f"EnableRule done; DescribeRule still says {state}")


def _execute_enable(events: Any, key: RuleKey) -> Outcome:
    return enable_rule(events, key.bus, key.rule)


def _plan_enable(inputs: HealInputs, config: Config, *, now: datetime, dry_run: bool) -> Plan:
    facts = rule_facts(inputs.latest, inputs.history)
    return plan(facts, len(inputs.latest), inputs.actions, config.heal, now=now,
                dry_run=dry_run, stale_after=config.health.stale_after)


#: Re-enable a DISABLED rule that was enabled before (heal.policy's checks), then read it back.
ENABLE_RULE = HealAction(
    name=ENABLE,
    description="re-enable a DISABLED EventBridge rule and verify it with DescribeRule",
    service="events",
    permissions=("events:EnableRule", "events:DescribeRule"),
    plan=_plan_enable,
    execute=_execute_enable,
)

#: Every action auto-heal takes, in the order they act (what the heal role must allow, and
#: all it may allow).
ACTIONS: tuple[HealAction, ...] = (ENABLE_RULE,)


def heal_permissions() -> list[str]:
    """Every IAM action auto-heal calls through the heal role, sorted."""
    return sorted({permission for action in ACTIONS for permission in action.permissions})
