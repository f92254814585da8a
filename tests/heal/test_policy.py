"""Auto-heal's safety checks, one by one, over hand-made frames (heal/policy.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from heal.policy import (
    Decision,
    RuleKey,
    attempts_in_last_hour,
    excluded_by,
    maintenance_threshold,
    opted_out,
    plan,
    rule_facts,
)
from orgscope.config import HealConfig
from orgscope.config import exclude_rule_error as exclude_pattern_error
from orgscope.datasets import HEAL_ACTIONS

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
COLLECTED = NOW - timedelta(minutes=1)
ACCOUNT = "111111111111"


def key(rule: str, bus: str = "default", account: str = ACCOUNT) -> RuleKey:
    return RuleKey(account, "us-east-1", bus, rule)


def rule_row(rule: str, state: str = "DISABLED", tags: dict[str, str] | None = None,
             bus: str = "default", account: str = ACCOUNT) -> dict[str, Any]:
    return {"account_id": account, "region": "us-east-1", "bus": bus, "rule": rule,
            "state": state, "tags": json.dumps(tags or {}), "collected_at": COLLECTED}


def history_row(rule: str, last_enabled: datetime | None, disabled_since: datetime | None = None,
                bus: str = "default", account: str = ACCOUNT) -> dict[str, Any]:
    return {"account_id": account, "region": "us-east-1", "bus": bus, "rule": rule,
            "first_seen_at": NOW - timedelta(days=3), "last_enabled_at": last_enabled,
            "disabled_since": disabled_since or (COLLECTED if last_enabled else None)}


def action_row(rule: str | None, at: datetime, *, action: str = "enable", result: str = "enabled",
               reason: str = "was ENABLED", dry_run: bool = False) -> dict[str, Any]:
    return {"id": f"x-{rule}-{at:%H%M%S}", "account_id": ACCOUNT if rule else None,
            "account_name": None, "region": "us-east-1" if rule else None,
            "bus": "default" if rule else None, "rule": rule, "team": None, "action": action,
            "dry_run": dry_run, "result": result, "reason": reason, "disabled_by": None,
            "disabled_at": None, "at": at, "actor": "orgscope"}


def actions(*rows: dict[str, Any]) -> pd.DataFrame:
    if not rows:
        return HEAL_ACTIONS.empty_frame()
    return pd.DataFrame(list(rows), columns=HEAL_ACTIONS.columns)


def decide(latest: list[dict[str, Any]], history: list[dict[str, Any]],
           stored: pd.DataFrame | None = None, dry_run: bool = False, **cfg: Any
           ) -> list[Decision]:
    facts = rule_facts(pd.DataFrame(latest), pd.DataFrame(history))
    result = plan(facts, len(latest), actions() if stored is None else stored,
                  HealConfig(enabled=True, **cfg), now=NOW, dry_run=dry_run)
    return list(result.decisions)


def enabled_rows(count: int) -> list[dict[str, Any]]:
    return [rule_row(f"healthy-{i}", "ENABLED") for i in range(count)]


# --- the small helpers -----------------------------------------------------------------------


def test_opt_out() -> None:
    assert opted_out({"orgscope:autoheal": "off"}, "orgscope:autoheal")
    assert opted_out({"OrgScope:AutoHeal": " OFF "}, "orgscope:autoheal")
    assert not opted_out({"orgscope:autoheal": "on"}, "orgscope:autoheal")
    assert not opted_out({"other": "off"}, "orgscope:autoheal")


def test_exclude_patterns() -> None:
    rule = key("orders-to-fulfilment", bus="central-bus")
    assert excluded_by(rule, ["orders-*"]) == "orders-*"
    assert excluded_by(rule, ["payments-*", f"{ACCOUNT}/us-east-1/central-bus/*"]) == \
        f"{ACCOUNT}/us-east-1/central-bus/*"
    assert excluded_by(rule, ["*/eu-west-1/*/*"]) is None
    assert excluded_by(rule, ["Orders-*"]) is None  # case-sensitive, as AWS names
    partner = key("r", bus="aws.partner/saas/x")
    assert excluded_by(partner, ["*/*/aws.partner/*/r"]) is not None
    assert exclude_pattern_error("orders-*") is None
    assert exclude_pattern_error("1/us-east-1/default/r") is None
    assert "account_id/region/bus/rule" in (exclude_pattern_error("default/r") or "")
    assert exclude_pattern_error(" ") == "must not be empty"


def test_maintenance_threshold() -> None:
    assert maintenance_threshold(26, 0.3) == 8  # 7.8 -> more than that is 8
    assert maintenance_threshold(10, 0.3) == 4
    assert maintenance_threshold(3, 0.3) == 2  # one disabled rule is never maintenance
    assert maintenance_threshold(10, 0.0) == 2


# --- the per-rule checks ---------------------------------------------------------------------


def test_a_rule_that_was_enabled_is_healed_with_a_reason() -> None:
    decisions = decide([*enabled_rows(9), rule_row("orders")],
                       [history_row("orders", NOW - timedelta(minutes=2))])
    assert [(d.key, d.action, d.record) for d in decisions] == [(key("orders"), "enable", True)]
    assert "was ENABLED in the inventory of 2026-11-26 11:58:00 UTC" in decisions[0].reason
    assert "1 of 10 rules disabled" in decisions[0].reason


def test_a_rule_created_disabled_is_never_healed() -> None:
    decisions = decide([*enabled_rows(9), rule_row("new")], [history_row("new", None)])
    assert [(d.action, d.code) for d in decisions] == [("skip", "never-enabled")]
    # no history at all (first inventory ever): the same
    decisions = decide([*enabled_rows(9), rule_row("new")], [])
    assert [(d.action, d.code) for d in decisions] == [("skip", "never-enabled")]


def test_opted_out_and_excluded_rules_are_left_alone() -> None:
    latest = [*enabled_rows(20), rule_row("tagged", tags={"orgscope:autoheal": "Off"}),
              rule_row("listed"), rule_row("by-path", bus="central-bus")]
    history = [history_row(r, NOW - timedelta(hours=1)) for r in ("tagged", "listed")]
    history.append(history_row("by-path", NOW - timedelta(hours=1), bus="central-bus"))
    decisions = decide(latest, history,
                       exclude_rules=["listed", f"{ACCOUNT}/us-east-1/central-bus/by-*"])
    codes = {d.key.rule: d.code for d in decisions if d.key}
    assert codes == {"tagged": "opt-out", "listed": "excluded", "by-path": "excluded"}
    assert all(d.action == "skip" for d in decisions)


def test_a_custom_opt_out_tag_is_honoured() -> None:
    decisions = decide([*enabled_rows(9), rule_row("r", tags={"heal": "off"})],
                       [history_row("r", NOW - timedelta(hours=1))], opt_out_tag="heal")
    assert decisions[0].code == "opt-out"


def test_a_skip_is_recorded_once_per_disabled_spell() -> None:
    spell_start = NOW - timedelta(hours=1)
    said = action_row("listed", NOW - timedelta(minutes=30), action="skip", result="skipped",
                      reason="excluded: matches ...")
    decisions = decide([*enabled_rows(9), rule_row("listed")],
                       [history_row("listed", spell_start)], actions(said),
                       exclude_rules=["listed"])
    assert [(d.code, d.record) for d in decisions] == [("excluded", False)]
    # the same skip from an earlier spell (before the rule was last ENABLED) is said again
    older = action_row("listed", spell_start - timedelta(minutes=5), action="skip",
                       result="skipped", reason="excluded: matches ...")
    decisions = decide([*enabled_rows(9), rule_row("listed")],
                       [history_row("listed", spell_start)], actions(older),
                       exclude_rules=["listed"])
    assert [(d.code, d.record) for d in decisions] == [("excluded", True)]


# --- maintenance -----------------------------------------------------------------------------


def test_maintenance_heals_nothing_and_says_so_once() -> None:
    disabled = [rule_row(f"d{i}") for i in range(4)]
    history = [history_row(f"d{i}", NOW - timedelta(minutes=10),
                           NOW - timedelta(minutes=9 - i)) for i in range(4)]
    latest = [*enabled_rows(6), *disabled]  # 4 of 10 > 30%
    decisions = decide(latest, history)
    assert len(decisions) == 1
    only = decisions[0]
    assert only.key is None and only.action == "skip" and only.record
    assert only.reason.startswith("maintenance: 4 of 10 rules disabled")
    # already paged for this spell (the 4th rule crossed the line at NOW - 6m): not again
    paged = action_row(None, NOW - timedelta(minutes=5), action="skip", result="skipped",
                       reason=only.reason)
    assert not decide(latest, history, actions(paged))[0].record
    # a page from an earlier spell does not count
    old_page = action_row(None, NOW - timedelta(hours=2), action="skip", result="skipped",
                          reason=only.reason)
    assert decide(latest, history, actions(old_page))[0].record


def test_rules_created_disabled_do_not_count_towards_maintenance() -> None:
    latest = [*enabled_rows(6), *(rule_row(f"new{i}") for i in range(3)), rule_row("was")]
    history = [*(history_row(f"new{i}", None) for i in range(3)),
               history_row("was", NOW - timedelta(minutes=5))]
    decisions = decide(latest, history)
    assert {d.key.rule: d.action for d in decisions if d.key} == {
        "new0": "skip", "new1": "skip", "new2": "skip", "was": "enable"}


def test_the_share_is_configurable() -> None:
    latest = [*enabled_rows(6), rule_row("a"), rule_row("b")]
    history = [history_row(r, NOW - timedelta(minutes=5)) for r in ("a", "b")]
    assert all(d.action == "enable" for d in decide(latest, history))
    decisions = decide(latest, history, maintenance_disabled_share=0.2)
    assert decisions[0].reason.startswith("maintenance: 2 of 8 rules disabled")


# --- limits ----------------------------------------------------------------------------------


def test_max_per_run_heals_the_oldest_first_and_records_the_rest() -> None:
    latest = [*enabled_rows(20), *(rule_row(f"r{i}") for i in range(4))]
    history = [history_row(f"r{i}", NOW - timedelta(minutes=30),
                           NOW - timedelta(minutes=20 - i)) for i in (3, 2, 1, 0)]
    decisions = decide(latest, history, max_per_run=2)
    assert [(d.key.rule, d.action) for d in decisions if d.key] == [
        ("r0", "enable"), ("r1", "enable"), ("r2", "skip"), ("r3", "skip")]
    assert decisions[2].reason.startswith("limit: heal.max_per_run (2) reached this run")


def test_max_per_hour_counts_stored_attempts() -> None:
    latest = [*enabled_rows(20), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    stored = actions(*(action_row(f"other{i}", NOW - timedelta(minutes=10 + i))
                       for i in range(3)),
                     action_row("old", NOW - timedelta(minutes=70)),
                     action_row("dry", NOW - timedelta(minutes=5), result="would-enable",
                                dry_run=True))
    assert attempts_in_last_hour(stored, NOW, dry_run=False) == 3
    assert attempts_in_last_hour(stored, NOW, dry_run=True) == 1
    decisions = decide(latest, history, stored, max_per_hour=3)
    assert decisions[0].reason.startswith("limit: heal.max_per_hour (3)")
    assert decide(latest, history, stored, max_per_hour=4)[0].action == "enable"


def test_zero_limits_heal_nothing() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    assert decide(latest, history, max_per_run=0)[0].code == "limit"


# --- repeats, dry-run and flapping -----------------------------------------------------------


def test_a_rule_healed_after_the_newest_inventory_waits_for_the_next() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    healed = action_row("r", COLLECTED + timedelta(seconds=5))
    assert decide(latest, history, actions(healed)) == []


def test_a_dry_run_sees_the_real_heals() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    healed = action_row("r", COLLECTED + timedelta(seconds=5))
    assert decide(latest, history, actions(healed), dry_run=True) == []
    healed = action_row("r", COLLECTED - timedelta(minutes=3))
    assert decide(latest, history, actions(healed), dry_run=True)[0].code == "flapping"


def test_disabled_again_after_a_heal_is_flapping() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    healed = action_row("r", COLLECTED - timedelta(minutes=3))
    decisions = decide(latest, history, actions(healed))
    assert [(d.action, d.code, d.record) for d in decisions] == [("skip", "flapping", True)]


def test_a_failed_attempt_is_retried_after_an_hour() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(hours=3))]
    failed = action_row("r", NOW - timedelta(minutes=20), result="failed", reason="AccessDenied")
    assert decide(latest, history, actions(failed)) == []
    failed = action_row("r", NOW - timedelta(minutes=61), result="failed", reason="AccessDenied")
    assert decide(latest, history, actions(failed))[0].action == "enable"


def test_dry_run_reports_a_rule_once_per_spell() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(minutes=30))]
    assert decide(latest, history, dry_run=True)[0].action == "enable"
    said = action_row("r", NOW - timedelta(minutes=5), result="would-enable", dry_run=True)
    (again,) = decide(latest, history, actions(said), dry_run=True)
    assert (again.action, again.record) == ("enable", False)
    # a dry-run report does not stop a real heal once dry_run is turned off
    assert decide(latest, history, actions(said), dry_run=False)[0].action == "enable"


@pytest.mark.parametrize("state", ["ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"])
def test_enabled_rules_need_nothing(state: str) -> None:
    assert decide([rule_row("r", state)], [history_row("r", COLLECTED)]) == []


def test_a_stale_inventory_is_not_acted_on() -> None:
    latest = [*enabled_rows(9), rule_row("r")]
    history = [history_row("r", NOW - timedelta(hours=3))]
    facts = rule_facts(pd.DataFrame(latest), pd.DataFrame(history))
    cfg = HealConfig(enabled=True)
    fresh = plan(facts, 10, actions(), cfg, now=NOW, dry_run=False,
                 stale_after=timedelta(minutes=20))
    assert fresh.decisions[0].action == "enable"
    later = plan(facts, 10, actions(), cfg, now=NOW + timedelta(minutes=30), dry_run=False,
                 stale_after=timedelta(minutes=20))
    assert later.decisions[0].code == "stale"


def test_disabled_again_after_an_inventory_saw_the_heal_is_still_flapping() -> None:
    """Somebody disables a rule orgscope re-enabled after the next inventory saw it ENABLED
    (a new disabled spell): orgscope must not fight them; and once it has said so, it keeps
    leaving that rule alone for the rest of the spell, even after the window."""
    latest = [*enabled_rows(9), rule_row("r")]
    healed = action_row("r", NOW - timedelta(hours=2))
    # the inventory after the heal saw it ENABLED; disabled again since
    history = [history_row("r", NOW - timedelta(hours=1), NOW - timedelta(minutes=55))]
    decisions = decide(latest, history, actions(healed))
    assert [(d.action, d.code, d.record) for d in decisions] == [("skip", "flapping", True)]
    said = action_row("r", NOW - timedelta(minutes=50), action="skip", result="skipped",
                      reason=decisions[0].reason)
    later = decide(latest, history, actions(healed, said))
    assert [(d.action, d.code, d.record) for d in later] == [("skip", "flapping", False)]
    # a heal older than the window, and nothing said this spell: healed as usual
    old = action_row("r", NOW - timedelta(days=2))
    assert decide(latest, history, actions(old))[0].action == "enable"


def test_a_rule_another_aws_service_manages_is_left_to_it() -> None:
    latest = pd.DataFrame([{**rule_row("Events-Archive-ops", "DISABLED"),
                            "managed_by": "events.amazonaws.com"}, *enabled_rows(8)])
    history = pd.DataFrame([history_row("Events-Archive-ops", NOW - timedelta(hours=1))])
    [fact] = rule_facts(latest, history)
    assert fact.managed_by == "events.amazonaws.com"
    [decision] = plan([fact], len(latest), pd.DataFrame(columns=HEAL_ACTIONS.columns),
                      HealConfig(enabled=True), now=NOW, dry_run=False).decisions
    assert decision.action == "skip" and decision.code == "managed"
    assert "events.amazonaws.com" in decision.reason


# --- change events: who changed the rule -----------------------------------------------------

PIPELINE = "arn:aws:sts::111111111111:assumed-role/deploy-pipeline/run-42"
PERSON = "arn:aws:sts::111111111111:assumed-role/Admin/jo"


def test_a_rule_last_changed_by_an_ignored_principal_is_left_alone() -> None:
    history = [{**history_row("by-pipeline", NOW - timedelta(hours=1)),
                "disabled_by": PIPELINE, "disabled_at": NOW - timedelta(minutes=30),
                "last_changed_by": PIPELINE},
               {**history_row("by-person", NOW - timedelta(hours=1)),
                "disabled_by": PERSON, "disabled_at": NOW - timedelta(minutes=30),
                "last_changed_by": PERSON},
               history_row("unknown", NOW - timedelta(hours=1))]
    decisions = decide([rule_row("by-pipeline"), rule_row("by-person"), rule_row("unknown"),
                        *enabled_rows(20)], history,
                       ignore_principals=["arn:aws:sts::*:assumed-role/deploy-pipeline/*"])
    by_rule = {d.key.rule: d for d in decisions if d.key}
    assert by_rule["by-pipeline"].action == "skip"
    assert by_rule["by-pipeline"].reason == (
        f"ignored-principal: last changed by {PIPELINE}, which matches heal.ignore_principals "
        "entry 'arn:aws:sts::*:assumed-role/deploy-pipeline/*'")
    # another principal, or no change event at all: judged as before
    assert by_rule["by-person"].action == by_rule["unknown"].action == "enable"


def test_facts_carry_who_disabled_the_rule_and_when() -> None:
    at = NOW - timedelta(minutes=30)
    [fact] = rule_facts(pd.DataFrame([rule_row("r")]), pd.DataFrame([
        {**history_row("r", NOW - timedelta(hours=1)), "disabled_by": PERSON,
         "disabled_at": at, "last_changed_by": PERSON}]))
    assert (fact.disabled_by, fact.disabled_at, fact.last_changed_by) == (PERSON, at, PERSON)
    [bare] = rule_facts(pd.DataFrame([rule_row("r")]),
                        pd.DataFrame([history_row("r", NOW - timedelta(hours=1))]))
    assert (bare.disabled_by, bare.disabled_at, bare.last_changed_by) == (None, None, None)


def test_ignore_principals_must_be_arn_patterns() -> None:
    with pytest.raises(ValueError, match="ARN pattern"):
        HealConfig(ignore_principals=["deploy-pipeline"])
