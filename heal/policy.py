"""Which DISABLED rules auto-heal may re-enable: pure decisions over stored frames.

No I/O here: :mod:`heal.run` reads the frames from the store (:class:`HealInputs`), asks each
action of :mod:`heal.actions` for its plan, acts on the decisions through the heal role and
writes them to ``heal_actions``. :func:`plan` is the policy of the ``enable`` action.

docs/heal.md, "The safety checks", lists each check and its reason. Invariants:

* A rule is re-enabled only when every check passes, in the table's order; the first that
  says no is the recorded reason. The maintenance check is organization-wide: when it says no,
  nothing is healed and the plan holds one skip row only.
* A skip is recorded once per rule, reason and disabled spell (the time since the rule was
  last seen ENABLED), not on every run; a dry-run's ``would-enable`` is decided again, not
  recorded again. The flapping window is :data:`FLAP_WINDOW`; the hourly limit is counted
  from the stored ``heal_actions``, so a restart does not reset it.
* A rule re-enabled after the newest inventory (the heal ran, the next inventory has not) and
  a failed attempt less than an hour old get no decision this run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import pandas as pd

from orgscope.config import HealConfig
from orgscope.datasets import MAINTENANCE_PREFIX
from orgscope.ownership import parse_tags
from orgscope.rule_globs import first_match

HOUR = timedelta(hours=1)
#: A rule orgscope re-enabled this recently that is DISABLED again is flapping, even when an
#: inventory saw it ENABLED in between (someone disabled it again after the heal).
FLAP_WINDOW = timedelta(days=1)
#: Fewer rules than this disabled at once is never maintenance, whatever the share.
MAINTENANCE_MIN_RULES = 2
#: Results that count as a write attempt against the hourly limit.
ATTEMPT_RESULTS = frozenset({"enabled", "not-verified", "failed", "would-enable"})
#: The decision to leave a rule (or the organization) alone; every other decision is the name
#: of the heal action to take.
SKIP = "skip"
#: The policy of this module decides for the action of this name (heal.actions.ENABLE_RULE).
ENABLE = "enable"
#: Reason codes (the text before the first ':').
OPT_OUT, EXCLUDED, NEVER_ENABLED, FLAPPING, LIMIT, STALE, MANAGED = (
    "opt-out", "excluded", "never-enabled", "flapping", "limit", "stale", "managed")
IGNORED_PRINCIPAL = "ignored-principal"


class RuleKey(NamedTuple):
    account_id: str
    region: str
    bus: str
    rule: str

    def path(self) -> str:
        """``account/region/bus/rule``, the form ``heal.exclude_rules`` patterns match."""
        return f"{self.account_id}/{self.region}/{self.bus}/{self.rule}"


@dataclass(frozen=True)
class RuleFacts:
    """What the inventory history says about one rule now DISABLED."""

    key: RuleKey
    tags: Mapping[str, str]
    #: The newest inventory snapshot (the one that saw it DISABLED).
    collected_at: datetime
    first_seen_at: datetime
    #: The last snapshot that saw it in any enabled state; None when never.
    last_enabled_at: datetime | None
    #: The first snapshot that saw it DISABLED after ``last_enabled_at``.
    disabled_since: datetime | None
    #: The AWS service that owns the rule (ListRules' ManagedBy), None for the account's own.
    managed_by: str | None = None
    #: Who made the call that disabled it, and when (change events, ``rule_changes``; None
    #: without them).
    disabled_by: str | None = None
    disabled_at: datetime | None = None
    #: Who made the rule's newest change of any kind (``rule_changes``), None when unknown.
    last_changed_by: str | None = None


@dataclass(frozen=True)
class Decision:
    """One decision: re-enable a rule, or leave it (or the whole organization) alone.

    ``key`` is None only for the organization-wide maintenance skip. ``action`` is
    :data:`SKIP` or the name of a heal action (``heal_actions.action``). ``record`` is false
    for a skip already in the audit log for this rule, reason and spell: nothing new to say.
    """

    key: RuleKey | None
    action: str
    reason: str
    record: bool = True

    @property
    def code(self) -> str:
        return reason_code(self.reason)


@dataclass(frozen=True)
class HealInputs:
    """What a heal action's policy decides from, as read from the store (:mod:`heal.run`):
    the latest ``rules``, the history of the DISABLED ones (first seen, last seen enabled,
    disabled since), the stored ``heal_actions`` and ``accounts``."""

    latest: pd.DataFrame
    history: pd.DataFrame
    actions: pd.DataFrame
    accounts: pd.DataFrame


@dataclass(frozen=True)
class Plan:
    """Every decision of one run, in the order they are acted on."""

    decisions: tuple[Decision, ...]
    disabled: int
    total: int
    maintenance: bool


# --- small pure helpers ----------------------------------------------------------------------


def reason_code(reason: str) -> str:
    """'opt-out: tagged ...' -> 'opt-out'."""
    return reason.split(":", 1)[0].strip()


def opted_out(tags: Mapping[str, str], tag_key: str) -> bool:
    """True when ``tags`` carry ``tag_key`` = 'off' (both compared without case)."""
    wanted = tag_key.lower()
    return any(k.lower() == wanted and v.strip().lower() == "off" for k, v in tags.items())


def excluded_by(key: RuleKey, patterns: Iterable[str]) -> str | None:
    """The first ``heal.exclude_rules`` pattern matching the rule, or None.

    Patterns as :mod:`orgscope.rule_globs` reads them.
    """
    return first_match(patterns, key.account_id, key.region, key.bus, key.rule)


def _utc(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (not isinstance(value, datetime)
                                            and bool(pd.isna(value))):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    result: datetime = stamp.tz_convert("UTC").to_pydatetime()
    return result


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def ignored_principal(principal: str | None, patterns: Iterable[str]) -> str | None:
    """The first ``heal.ignore_principals`` glob matching ``principal`` (an ARN), or None.
    Case-sensitive, ``*`` and ``?`` as in fnmatch (``*`` also spans ``/`` and ``:``)."""
    if principal is None:
        return None
    return next((p for p in patterns if fnmatchcase(principal, p)), None)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "never"


# --- facts from frames -----------------------------------------------------------------------


def rule_facts(latest: pd.DataFrame, history: pd.DataFrame) -> list[RuleFacts]:
    """The DISABLED rules of the latest inventory, with what history says about each.

    ``latest``: the ``rules`` view (account_id, region, bus, rule, state, tags, collected_at,
    and managed_by when present).
    ``history``: one row per rule (account_id, region, bus, rule, first_seen_at,
    last_enabled_at, disabled_since), as :data:`orgscope.rule_history.HISTORY_SQL` computes
    it from ``rules_history``. Sorted oldest disabled spell first, then by key.
    """
    if latest.empty:
        return []
    by_key: dict[RuleKey, dict[str, Any]] = {}
    for row in _records(history):
        by_key[RuleKey(str(row["account_id"]), str(row["region"]), str(row["bus"]),
                       str(row["rule"]))] = row
    facts: list[RuleFacts] = []
    for row in _records(latest[latest["state"] == "DISABLED"]):
        key = RuleKey(str(row["account_id"]), str(row["region"]), str(row["bus"]),
                      str(row["rule"]))
        collected = _utc(row["collected_at"])
        assert collected is not None, "rules.collected_at is never null"
        past = by_key.get(key, {})
        facts.append(RuleFacts(
            key=key,
            tags=parse_tags(row.get("tags")),
            collected_at=collected,
            first_seen_at=_utc(past.get("first_seen_at")) or collected,
            last_enabled_at=_utc(past.get("last_enabled_at")),
            disabled_since=_utc(past.get("disabled_since")) or collected,
            managed_by=row["managed_by"] if isinstance(row.get("managed_by"), str)
            and row["managed_by"] else None,
            disabled_by=_text(past.get("disabled_by")),
            disabled_at=_utc(past.get("disabled_at")),
            last_changed_by=_text(past.get("last_changed_by")),
        ))
    facts.sort(key=lambda f: (f.disabled_since or f.collected_at, f.key))
    return facts


def _actions_by_rule(actions: pd.DataFrame) -> dict[RuleKey, list[dict[str, Any]]]:
    out: dict[RuleKey, list[dict[str, Any]]] = {}
    if actions.empty:
        return out
    for row in _records(actions):
        if row.get("rule") is None or pd.isna(row.get("rule")):
            continue
        key = RuleKey(str(row["account_id"]), str(row["region"]), str(row["bus"]),
                      str(row["rule"]))
        row["at"] = _utc(row["at"])
        out.setdefault(key, []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["at"])
    return out


def attempts_in_last_hour(actions: pd.DataFrame, now: datetime, dry_run: bool) -> int:
    """Re-enables attempted (or, in dry-run, reported) in the hour before ``now``."""
    if actions.empty:
        return 0
    at = pd.to_datetime(actions["at"], utc=True)
    mask = ((actions["action"] == ENABLE) & (actions["dry_run"] == dry_run)
            & actions["result"].isin(ATTEMPT_RESULTS) & (at > pd.Timestamp(now) - HOUR)
            & (at <= pd.Timestamp(now)))
    return int(mask.sum())


# --- maintenance -----------------------------------------------------------------------------


def maintenance_threshold(total: int, share: float) -> int:
    """The smallest number of disabled rules that is 'more than ``share``' of ``total``
    (and at least :data:`MAINTENANCE_MIN_RULES`)."""
    return max(MAINTENANCE_MIN_RULES, math.floor(share * total) + 1)


def maintenance_reason(disabled: int, total: int, share: float) -> str:
    return (f"{MAINTENANCE_PREFIX}: {disabled} of {total} rules disabled (more than "
            f"{share:.0%} of the organization's rules at once looks like planned work); "
            "no rule re-enabled, a person decides")


def _maintenance_started(spells: list[datetime], threshold: int) -> datetime:
    """When the rules disabled now first numbered ``threshold``: the start of the spell."""
    return sorted(spells)[threshold - 1]


def _maintenance_recorded(actions: pd.DataFrame, since: datetime) -> bool:
    if actions.empty:
        return False
    org_wide = actions[actions["rule"].isna() & actions["reason"].str.startswith(
        MAINTENANCE_PREFIX)]
    if org_wide.empty:
        return False
    return bool((pd.to_datetime(org_wide["at"], utc=True) >= pd.Timestamp(since)).any())


# --- the plan --------------------------------------------------------------------------------


def _already_said(history: list[dict[str, Any]], since: datetime | None, code: str,
                  action: str) -> bool:
    return any(r["action"] == action and reason_code(str(r["reason"])) == code
               and (since is None or r["at"] > since) for r in history)


def _left_alone_on_purpose(fact: RuleFacts, cfg: HealConfig) -> str | None:
    """The owners' own "leave it": the opt-out tag, ``heal.exclude_rules``, or a last change by
    a principal of ``heal.ignore_principals``; as a reason, None when none applies."""
    if opted_out(fact.tags, cfg.opt_out_tag):
        return f"{OPT_OUT}: tagged {cfg.opt_out_tag}=off"
    pattern = excluded_by(fact.key, cfg.exclude_rules)
    if pattern is not None:
        return f"{EXCLUDED}: matches heal.exclude_rules entry {pattern!r}"
    pattern = ignored_principal(fact.last_changed_by, cfg.ignore_principals)
    if pattern is not None:
        return (f"{IGNORED_PRINCIPAL}: last changed by {fact.last_changed_by}, which matches "
                f"heal.ignore_principals entry {pattern!r}")
    return None


def _rule_check(fact: RuleFacts, cfg: HealConfig, now: datetime,
                stale_after: timedelta | None) -> str | None:
    """The first per-rule safety check that says no, as a reason (None: all pass)."""
    if fact.managed_by is not None:
        return (f"{MANAGED}: the rule belongs to {fact.managed_by}, which enables and "
                "disables it; EventBridge refuses changes to managed rules")
    if fact.last_enabled_at is None:
        return (f"{NEVER_ENABLED}: DISABLED in every inventory since it was first seen "
                f"({_when(fact.first_seen_at)}); a rule created disabled is left alone")
    chosen = _left_alone_on_purpose(fact, cfg)
    if chosen is not None:
        return chosen
    if stale_after is not None and fact.collected_at < now - stale_after:
        return (f"{STALE}: the newest inventory of this account and region is from "
                f"{_when(fact.collected_at)}; only a fresh inventory is acted on")
    return None


def _enable_reason(fact: RuleFacts, was_enabled: list[RuleFacts], total_rules: int) -> str:
    return (f"was ENABLED in the inventory of {_when(fact.last_enabled_at)}, DISABLED "
            f"since {_when(fact.disabled_since)}; not opted out, not excluded, "
            f"{len(was_enabled)} of {total_rules} rules disabled")


def plan(facts: list[RuleFacts], total_rules: int, actions: pd.DataFrame, cfg: HealConfig,
         *, now: datetime, dry_run: bool, stale_after: timedelta | None = None) -> Plan:
    """Decide, for every DISABLED rule in ``facts``, whether to re-enable it now.

    ``total_rules``: rules in the latest inventory (all states). ``actions``: the stored
    ``heal_actions`` (at least the last hour's and every row about the rules in ``facts``).
    ``stale_after``: a rule whose newest inventory is older than this is not acted on (the
    account could not be read since; the rule may have changed).
    """
    by_rule = _actions_by_rule(actions)
    was_enabled = [f for f in facts if f.last_enabled_at is not None]
    threshold = maintenance_threshold(total_rules, cfg.maintenance_disabled_share)
    if len(was_enabled) >= threshold:
        started = _maintenance_started(
            [f.disabled_since or f.collected_at for f in was_enabled], threshold)
        reason = maintenance_reason(len(was_enabled), total_rules,
                                    cfg.maintenance_disabled_share)
        decision = Decision(None, SKIP, reason,
                            record=not _maintenance_recorded(actions, started))
        return Plan((decision,), len(was_enabled), total_rules, True)

    decisions: list[Decision] = []
    left_this_run = cfg.max_per_run
    left_this_hour = cfg.max_per_hour - attempts_in_last_hour(actions, now, dry_run)
    for fact in facts:
        past = by_rule.get(fact.key, [])
        spell = fact.last_enabled_at
        refusal = _rule_check(fact, cfg, now, stale_after)
        if refusal is not None:
            code = reason_code(refusal)
            decisions.append(Decision(fact.key, SKIP, refusal,
                                      record=not _already_said(past, spell, code, SKIP)))
            continue
        attempts = [r for r in past if r["action"] == ENABLE
                    and (spell is None or r["at"] > spell)]
        real = [r for r in attempts if not r["dry_run"]]
        # (a dry-run looks at real heals too: it says what a real run would do)
        healed = [r for r in past if r["action"] == ENABLE and not r["dry_run"]
                  and r["result"] == "enabled"]
        recent = [r for r in healed if spell is None or r["at"] > min(spell, now - FLAP_WINDOW)]
        flapped = _already_said(past, spell, FLAPPING, SKIP)
        if recent or flapped:
            last_at = healed[-1]["at"] if healed else None
            if recent and last_at is not None and last_at >= fact.collected_at:
                continue  # re-enabled after the newest inventory: wait for the next one
            reason = (f"{FLAPPING}: re-enabled by orgscope at {_when(last_at)}, found "
                      f"DISABLED again by the inventory of {_when(fact.collected_at)}; "
                      "someone means it, a person should look")
            decisions.append(Decision(fact.key, SKIP, reason, record=not flapped))
            continue
        if dry_run and any(r["dry_run"] and r["result"] == "would-enable" for r in attempts):
            # reported as would-enable for this spell already: decided again, not recorded
            decisions.append(Decision(fact.key, ENABLE, _enable_reason(fact, was_enabled,
                                                                         total_rules),
                                      record=False))
            continue
        if not dry_run and real and real[-1]["at"] > now - HOUR:
            continue  # the last attempt failed less than an hour ago: retry later
        if left_this_run <= 0 or left_this_hour <= 0:
            which = (f"heal.max_per_run ({cfg.max_per_run}) reached this run"
                     if left_this_run <= 0 else
                     f"heal.max_per_hour ({cfg.max_per_hour}) reached in the last hour")
            decisions.append(Decision(fact.key, SKIP, f"{LIMIT}: {which}; retried later",
                                      record=not _already_said(past, spell, LIMIT, SKIP)))
            continue
        left_this_run -= 1
        left_this_hour -= 1
        decisions.append(Decision(fact.key, ENABLE,
                                  _enable_reason(fact, was_enabled, total_rules)))
    return Plan(tuple(decisions), len(was_enabled), total_rules, False)
