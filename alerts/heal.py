"""Auto-heal's I/O edge: re-enable DISABLED rules through the heal role, verify, audit.

The decisions are :mod:`alerts.heal_policy`'s (pure); this module reads what they need from
the store, acts on them and writes one ``heal_actions`` row per decision worth recording.

AWS APIs wrapped, in the rule's own account and region, through the separate heal role
(``heal.role_name``, ExternalId from ``heal.external_id_env``; never the read role):
``events:EnableRule``, then ``events:DescribeRule`` to verify. Every AWS call auto-heal makes is
declared in :data:`ACTIONS` and tests/test_iam_templates.py holds the list equal to what
iam/orgscope-heal-role.yaml allows. In dry-run no write call is made (result
``would-enable``). A failure (the role cannot be assumed, a call is refused, the rule is
gone) is recorded for that rule only; the others are still healed.

Who disabled a rule and when would come from CloudTrail ``LookupEvents``; the simulator (moto)
lacks it, so ``disabled_by`` and ``disabled_at`` are left null (docs/heal.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from alerts.heal_policy import Decision, Plan, RuleKey, plan, rule_facts
from orgscope.aws import AccessError, RoleSpec, SessionFactory, describe_error
from orgscope.config import Config
from orgscope.datasets import HEAL_ACTIONS
from orgscope.ownership import known_teams, rule_teams
from orgscope.store import Store

log = logging.getLogger(__name__)

#: The ``actor`` of rows no AWS principal acted on (skips).
ORGSCOPE_ACTOR = "orgscope"


@dataclass(frozen=True)
class HealAction:
    """One thing auto-heal does to AWS, and every IAM action it calls to do it."""

    name: str
    description: str
    permissions: tuple[str, ...]


#: Re-enable a rule, then read it back.
ENABLE_RULE = HealAction(
    name="enable",
    description="re-enable a DISABLED EventBridge rule and verify it with DescribeRule",
    permissions=("events:EnableRule", "events:DescribeRule"),
)
#: Every action auto-heal takes (what the heal role must allow, and all it may allow).
ACTIONS: tuple[HealAction, ...] = (ENABLE_RULE,)


def heal_permissions() -> list[str]:
    """Every IAM action auto-heal calls through the heal role, sorted."""
    return sorted({permission for action in ACTIONS for permission in action.permissions})


def heal_role(config: Config) -> RoleSpec:
    """The heal role: ``heal.role_name`` with its own ExternalId variable."""
    session = f"{config.aws.session_name}-heal"[:64]
    return RoleSpec(name=config.heal.role_name, external_id_env=config.heal.external_id_env,
                    session_name=session, duration_s=config.aws.session_duration_s)


# --- reading the store -----------------------------------------------------------------------

LATEST_SQL = ("SELECT account_id, region, bus, rule, state, tags, managed_by, collected_at "
              "FROM rules "
              "ORDER BY account_id, region, bus, rule")

#: Per rule DISABLED now: first seen, last seen in an enabled state, first seen DISABLED after
#: that (the start of the current disabled spell).
HISTORY_SQL = """
WITH disabled AS (SELECT account_id, region, bus, rule FROM rules WHERE state = 'DISABLED'),
h AS (
    SELECT h.account_id, h.region, h.bus, h.rule, h.state, h.collected_at
    FROM rules_history h JOIN disabled USING (account_id, region, bus, rule)),
spans AS (
    SELECT account_id, region, bus, rule, min(collected_at) AS first_seen_at,
           max(collected_at) FILTER (WHERE state <> 'DISABLED') AS last_enabled_at
    FROM h GROUP BY ALL)
SELECT s.account_id, s.region, s.bus, s.rule, s.first_seen_at, s.last_enabled_at,
       min(h.collected_at) FILTER (
           WHERE h.state = 'DISABLED'
           AND (s.last_enabled_at IS NULL OR h.collected_at > s.last_enabled_at)
       ) AS disabled_since
FROM spans s JOIN h USING (account_id, region, bus, rule)
GROUP BY ALL
"""

ACTIONS_SQL = 'SELECT * EXCLUDE (date) FROM heal_actions ORDER BY "at"'
ACCOUNTS_SQL = "SELECT account_id, name, team FROM accounts"


@dataclass(frozen=True)
class HealInputs:
    """What :func:`alerts.heal_policy.plan` needs, as read from the store."""

    latest: pd.DataFrame
    history: pd.DataFrame
    actions: pd.DataFrame
    accounts: pd.DataFrame


def read_inputs(store: Store) -> HealInputs:
    """The latest ``rules``, the history of the DISABLED ones, ``heal_actions``, ``accounts``."""
    return HealInputs(latest=store.query(LATEST_SQL), history=store.query(HISTORY_SQL),
                      actions=store.query(ACTIONS_SQL), accounts=store.query(ACCOUNTS_SQL))


# --- acting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one decision: the result column and a note for the reason."""

    result: str
    note: str


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


@dataclass
class HealReport:
    """One run: the plan, the rows written, and counts by result."""

    plan: Plan
    rows: pd.DataFrame
    dry_run: bool
    written: int = 0
    results: dict[str, int] = field(default_factory=dict)
    #: Every decision with its outcome, recorded or not (what ``orgscope heal`` prints).
    outcomes: list[tuple[Decision, Outcome]] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One line per decision: result, account, region, bus, rule, reason, recorded."""
        lines = [{
            "result": outcome.result,
            "account": decision.key.account_id if decision.key else "*",
            "region": decision.key.region if decision.key else "*",
            "bus": decision.key.bus if decision.key else "*",
            "rule": decision.key.rule if decision.key else "*",
            "reason": f"{decision.reason}; {outcome.note}" if outcome.note else decision.reason,
            "recorded": "yes" if decision.record else "already",
        } for decision, outcome in self.outcomes]
        return pd.DataFrame(lines, columns=["result", "account", "region", "bus", "rule",
                                            "reason", "recorded"])

    def summary(self) -> str:
        """'heal: 1 enabled, 2 skipped; 3 audit rows written', or the maintenance reason."""
        mode = " (dry-run)" if self.dry_run else ""
        if self.plan.maintenance:
            return f"heal{mode}: {self.plan.decisions[0].reason}"
        counts = ", ".join(f"{n} {r}" for r, n in sorted(self.results.items()))
        if not counts:
            return f"heal{mode}: no DISABLED rule to act on ({self.plan.total} rules)"
        return f"heal{mode}: {counts}; {self.written} audit rows written"


def _labels(key: RuleKey | None, accounts: pd.DataFrame, config: Config,
            owners: Mapping[tuple[str, str, str, str], str]) -> tuple[str | None, str | None]:
    """The account's name and the rule's team: its own team tag, else its account's."""
    if key is None:
        return None, None
    known = accounts[accounts["account_id"] == key.account_id]
    configured = config.account(key.account_id)
    name: str | None
    team: str | None
    if not known.empty:
        name, team = str(known.iloc[0]["name"]), str(known.iloc[0]["team"])
    else:
        name, team = (configured.name, configured.team) if configured else (None, None)
    return name, owners.get((key.account_id, key.region, key.bus, key.rule), team)


def _act(decision: Decision, factory: SessionFactory, role: RoleSpec, dry_run: bool
         ) -> Outcome:
    if decision.action == "skip":
        return Outcome("skipped", "")
    if dry_run:
        return Outcome("would-enable", "dry-run: no call made")
    assert decision.key is not None
    key = decision.key
    try:
        events = factory.client(key.account_id, "events", key.region, role=role)
        outcome = enable_rule(events, key.bus, key.rule)
    except AccessError as error:
        outcome = Outcome("failed", error.reason)
    except (ClientError, BotoCoreError) as error:
        outcome = Outcome("failed", describe_error(error))
    except Exception as error:  # anything else still fails this rule only, and is recorded
        log.exception("heal %s %s: rule %s on %s: unexpected error", key.account_id,
                      key.region, key.rule, key.bus)
        outcome = Outcome("failed", describe_error(error))
    level = logging.INFO if outcome.result == "enabled" else logging.WARNING
    log.log(level, "heal %s %s: rule %s on %s: %s (%s)", key.account_id, key.region, key.rule,
            key.bus, outcome.result, outcome.note)
    return outcome


def run_id(now: datetime) -> str:
    return f"heal-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_heal(config: Config, store: Store, factory: SessionFactory, *,
             now: datetime | None = None, dry_run: bool | None = None) -> HealReport:
    """Decide and act on every DISABLED rule of the latest inventory; write ``heal_actions``.

    ``dry_run`` None takes ``heal.dry_run``. Reads ``rules``, ``rules_history``,
    ``heal_actions`` and ``accounts``; calls EnableRule and DescribeRule through the heal role
    (not in dry-run); writes one ``heal_actions`` row per decision worth recording (run id
    ``heal-YYYYmmddTHHMMSSZ-<random>``). Returns the report (rows as written).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    cfg = config.heal
    dry = cfg.dry_run if dry_run is None else dry_run
    inputs = read_inputs(store)
    facts = rule_facts(inputs.latest, inputs.history)
    decided = plan(facts, len(inputs.latest), inputs.actions, cfg, now=moment, dry_run=dry,
                   stale_after=config.health.stale_after)
    role = heal_role(config)
    owners = rule_teams(inputs.latest, config.collectors.cost.tag_key, known_teams(config))
    rows: list[dict[str, Any]] = []
    results: dict[str, int] = {}
    outcomes: list[tuple[Decision, Outcome]] = []
    for decision in decided.decisions:
        outcome = _act(decision, factory, role, dry)
        results[outcome.result] = results.get(outcome.result, 0) + 1
        outcomes.append((decision, outcome))
        if not decision.record:
            continue
        key = decision.key
        name, team = _labels(key, inputs.accounts, config, owners)
        reason = f"{decision.reason}; {outcome.note}" if outcome.note else decision.reason
        rows.append({
            "id": str(uuid.uuid4()),
            "account_id": key.account_id if key else None,
            "account_name": name,
            "region": key.region if key else None,
            "bus": key.bus if key else None,
            "rule": key.rule if key else None,
            "team": team,
            "action": decision.action,
            "dry_run": dry,
            "result": outcome.result,
            "reason": reason,
            "disabled_by": None,
            "disabled_at": None,
            "at": moment,
            "actor": role.arn(key.account_id) if key and decision.action == "enable"
            else ORGSCOPE_ACTOR,
        })
    frame = pd.DataFrame(rows, columns=HEAL_ACTIONS.columns)
    if rows:
        frame["disabled_at"] = pd.to_datetime(frame["disabled_at"], utc=True)
        store.write(HEAL_ACTIONS.name, frame, run_id(moment))
    report = HealReport(decided, frame, dry, written=len(rows), results=results,
                        outcomes=outcomes)
    log.info("%s", report.summary())
    return report
