"""The heal step's I/O edge: read the store, let each heal action plan, act, audit.

Every action of :data:`heal.actions.ACTIONS` decides from the same :class:`HealInputs`
(its policy is pure); this module acts on the decisions through the separate heal role
(``heal.role_name``, ExternalId from ``heal.external_id_env``; never the read role), with a
client of the action's service in the rule's own account and region, and writes one
``heal_actions`` row per decision worth recording. In dry-run no write call is made (result
``would-<action>``). A failure (the role cannot be assumed, a call is refused, the rule is
gone) is recorded for that rule only; the others are still healed.

Who disabled a rule and when (``disabled_by``, ``disabled_at``) come from the change events in
``rule_changes`` (orgscope.rule_history.HISTORY_SQL); null without them (docs/heal.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from heal.actions import ACTIONS, HealAction, Outcome
from heal.policy import SKIP, Decision, HealInputs, Plan, RuleKey
from orgscope.aws import AccessError, RoleSpec, SessionFactory, describe_error
from orgscope.config import Config
from orgscope.datasets import HEAL_ACTIONS
from orgscope.ownership import known_teams, rule_teams, team_tag_key
from orgscope.rule_history import HISTORY_SQL, LATEST_SQL
from orgscope.store import Store

log = logging.getLogger(__name__)

#: The ``actor`` of rows no AWS principal acted on (skips).
ORGSCOPE_ACTOR = "orgscope"
#: Results logged as warnings: the action did not (verifiably) happen.
UNSUCCESSFUL = frozenset({"failed", "not-verified"})


def heal_role(config: Config) -> RoleSpec:
    """The heal role: ``heal.role_name`` with its own ExternalId variable."""
    session = f"{config.aws.session_name}-heal"[:64]
    return RoleSpec(name=config.heal.role_name, external_id_env=config.heal.external_id_env,
                    session_name=session, duration_s=config.aws.session_duration_s)


# --- reading the store -----------------------------------------------------------------------

ACTIONS_SQL = 'SELECT * EXCLUDE (date) FROM heal_actions ORDER BY "at"'
ACCOUNTS_SQL = "SELECT account_id, name, team FROM accounts"


def read_inputs(store: Store) -> HealInputs:
    """The latest ``rules``, the history of the DISABLED ones, ``heal_actions``, ``accounts``."""
    return HealInputs(latest=store.query(LATEST_SQL), history=store.query(HISTORY_SQL),
                      actions=store.query(ACTIONS_SQL), accounts=store.query(ACCOUNTS_SQL))


# --- acting ----------------------------------------------------------------------------------


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
            org_wide = next(d for d in self.plan.decisions if d.key is None)
            return f"heal{mode}: {org_wide.reason}"
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


def _act(action: HealAction, decision: Decision, factory: SessionFactory, role: RoleSpec,
         dry_run: bool) -> Outcome:
    if decision.action == SKIP:
        return Outcome("skipped", "")
    if dry_run:
        return Outcome(f"would-{action.name}", "dry-run: no call made")
    assert decision.key is not None
    key = decision.key
    try:
        client = factory.client(key.account_id, action.service, key.region, role=role)
        outcome = action.execute(client, key)
    except AccessError as error:
        outcome = Outcome("failed", error.reason)
    except (ClientError, BotoCoreError) as error:
        outcome = Outcome("failed", describe_error(error))
    except Exception as error:  # anything else still fails this rule only, and is recorded
        log.exception("heal %s %s: %s rule %s on %s: unexpected error", key.account_id,
                      key.region, action.name, key.rule, key.bus)
        outcome = Outcome("failed", describe_error(error))
    level = logging.WARNING if outcome.result in UNSUCCESSFUL else logging.INFO
    log.log(level, "heal %s %s: rule %s on %s: %s (%s)", key.account_id, key.region, key.rule,
            key.bus, outcome.result, outcome.note)
    return outcome


def _combined(plans: list[Plan]) -> Plan:
    """One run's plan over every action: their decisions in action order."""
    if len(plans) == 1:
        return plans[0]
    return Plan(tuple(d for p in plans for d in p.decisions), max(p.disabled for p in plans),
                max(p.total for p in plans), any(p.maintenance for p in plans))


def _who_disabled(history: pd.DataFrame) -> dict[RuleKey, tuple[str | None, Any]]:
    """{rule: (disabled_by, disabled_at)} from the history's change events (HISTORY_SQL)."""
    if history.empty or "disabled_by" not in history.columns:
        return {}
    return {RuleKey(str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"])):
            (r["disabled_by"] if isinstance(r["disabled_by"], str) else None,
             r["disabled_at"] if r["disabled_by"] is not None and not pd.isna(r["disabled_at"])
             else None)
            for r in history.to_dict("records")}


def run_id(now: datetime) -> str:
    return f"heal-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_heal(config: Config, store: Store, factory: SessionFactory, *,
             now: datetime | None = None, dry_run: bool | None = None) -> HealReport:
    """Let every heal action decide on the latest inventory, act, and write ``heal_actions``.

    ``dry_run`` None takes ``heal.dry_run``. Reads ``rules``, ``rules_history``,
    ``heal_actions`` and ``accounts``; calls each action's AWS API through the heal role
    (not in dry-run); writes one ``heal_actions`` row per decision worth recording (run id
    ``heal-YYYYmmddTHHMMSSZ-<random>``). Returns the report (rows as written).
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    cfg = config.heal
    dry = cfg.dry_run if dry_run is None else dry_run
    inputs = read_inputs(store)
    planned = [(action, action.plan(inputs, config, now=moment, dry_run=dry))
               for action in ACTIONS]
    role = heal_role(config)
    owners = rule_teams(inputs.latest, team_tag_key(config), known_teams(config))
    rows: list[dict[str, Any]] = []
    results: dict[str, int] = {}
    outcomes: list[tuple[Decision, Outcome]] = []
    who = _who_disabled(inputs.history)
    acts = [(action, decision) for action, steps in planned for decision in steps.decisions]
    for action, decision in acts:
        outcome = _act(action, decision, factory, role, dry)
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
            "disabled_by": who.get(key, (None, None))[0] if key else None,
            "disabled_at": who.get(key, (None, None))[1] if key else None,
            "at": moment,
            "actor": role.arn(key.account_id) if key and decision.action != SKIP
            else ORGSCOPE_ACTOR,
        })
    frame = pd.DataFrame(rows, columns=HEAL_ACTIONS.columns)
    if rows:
        frame["disabled_at"] = pd.to_datetime(frame["disabled_at"], utc=True)
        store.write(HEAL_ACTIONS.name, frame, run_id(moment))
    report = HealReport(_combined([steps for _, steps in planned]), frame, dry,
                        written=len(rows), results=results, outcomes=outcomes)
    log.info("%s", report.summary())
    return report
