"""Rule verdicts of the Event-flow page (dashboard.verdicts) against a tmp store filled with the
sample organization."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from dashboard import rule_metrics
from dashboard import verdicts as vd
from dashboard.data import open_store
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import (
    CENTRAL,
    FAILING_RULE,
    SILENT_RULE,
    UNREACHABLE_ID,
    expected_verdicts,
    fill_event_flow,
    fill_org_store,
)


def test_verdicts_are_the_latest_evaluation_most_urgent_first(flow_store: Store):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    expected = expected_verdicts()
    assert dict(zip(verdicts["rule"], verdicts["verdict"], strict=True)) == {
        rule: verdict for (_region, rule), verdict in expected.items()
    }
    assert verdicts["verdict"].iloc[0] == "FAILING"
    assert verdicts["rule"].iloc[0] == FAILING_RULE
    assert list(verdicts["urgency"]) == sorted(verdicts["urgency"])
    failing = verdicts.iloc[0]
    assert any("failed invocations" in reason for reason in failing["reasons"])
    assert failing["account"] == "event-bus" and failing["team"] == "platform"


def test_verdict_counts_cover_every_verdict(flow_store: Store):
    counts = vd.verdict_counts(vd.rule_verdicts(flow_store, Filters()))
    assert counts == {"OK": 20, "DEGRADED": 1, "SILENT": 1, "FAILING": 1, "DISABLED": 4,
                      "STALE": 2}
    raw = flow_store.query("SELECT verdict, count(*) AS n FROM rule_health GROUP BY verdict")
    assert counts == {v: int(raw.set_index("verdict")["n"].get(v, 0)) for v in counts}


def test_filters_narrow_verdicts(flow_store: Store):
    by_team = vd.rule_verdicts(flow_store, Filters(teams=("payments",)))
    assert set(by_team["account_id"]) == {UNREACHABLE_ID}
    assert set(by_team["verdict"]) == {"STALE"}
    by_account = vd.rule_verdicts(flow_store, Filters(account_ids=(CENTRAL,)))
    assert set(by_account["account"]) == {"event-bus"} and len(by_account) == 15
    assert vd.rule_verdicts(flow_store, Filters(regions=("eu-west-1",))).empty


def test_rules_without_a_verdict_are_listed_as_not_judged(empty_store: Store, now: datetime):
    store = open_store(empty_store.base)
    fill_org_store(store, now)
    verdicts = vd.rule_verdicts(store, Filters())
    assert len(verdicts) > 0
    assert set(verdicts["verdict"]) == {vd.NO_VERDICT}
    assert sum(vd.verdict_counts(verdicts).values()) == 0
    assert not rule_metrics.metrics_present(store)


def test_matrix_by_team_takes_the_most_urgent_verdict(flow_store: Store):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    cells = vd.verdict_matrix(verdicts, rows="team")
    platform = cells[(cells["row"] == "platform") & (cells["rule"] == FAILING_RULE)].iloc[0]
    assert platform["verdict"] == "FAILING"
    assert "failed invocations" in platform["hover"]
    with pytest.raises(ValueError, match="rows must be"):
        vd.verdict_matrix(verdicts, rows="region")


def test_export_joins_reasons(flow_store: Store):
    export = vd.verdict_export(vd.rule_verdicts(flow_store, Filters()))
    row = export[export["rule"] == SILENT_RULE].iloc[0]
    assert " | " in row["reasons"] and row["verdict"] == "SILENT"
    assert rule_metrics.metrics_present(flow_store)


def test_rule_key_round_trips():
    key = vd.RuleKey("1", "us-east-1", "central-bus", "r")
    assert vd.RuleKey.decode(key.encode()) == key


def test_a_rules_own_team_tag_sets_its_team_and_the_team_filter(
        tmp_path_factory: pytest.TempPathFactory, flow_now: datetime) -> None:
    tagged = open_store(str(tmp_path_factory.mktemp("owned") / "data"))
    fill_org_store(tagged, flow_now)
    fill_event_flow(tagged, flow_now, days=1)
    # a newer inventory of the central account in which one of its rules is tagged Team=ops
    rules = tagged.query(f"SELECT * EXCLUDE (date) FROM rules WHERE account_id = '{CENTRAL}'")
    runs = tagged.query("SELECT * EXCLUDE (date) FROM runs WHERE collector = 'inventory' "
                        f"AND account_id = '{CENTRAL}' ORDER BY started_at DESC LIMIT 1")
    later = runs["started_at"].iloc[0] + pd.Timedelta(seconds=1)
    central = rules.index[0]
    rules.loc[central, "tags"] = json.dumps({"Team": "ops"})
    rules["collected_at"] = later
    tagged.write("runs", runs.assign(started_at=later, run_id="retag"), "retag")
    tagged.write("rules", rules, "retag")
    owned = str(rules.loc[central, "rule"])
    verdicts = vd.rule_verdicts(tagged, Filters())
    teams = dict(zip(verdicts["rule"], verdicts["team"], strict=True))
    assert teams[owned] == "ops"
    assert {t for r, t in teams.items() if r != owned} >= {"platform"}
    only_ops = vd.rule_verdicts(tagged, Filters(teams=("ops",)))
    assert list(only_ops["rule"]) == [owned]
    platform = vd.rule_verdicts(tagged, Filters(teams=("platform",)))
    assert owned not in set(platform["rule"]) and len(platform) > 0
