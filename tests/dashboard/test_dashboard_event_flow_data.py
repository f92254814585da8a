"""The Event-flow data layer against a tmp store filled with the sample organization."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dashboard_sample import (
    CENTRAL,
    DEGRADED_RULE,
    FAILING_RULE,
    SILENT_RULE,
    UNREACHABLE_ID,
    expected_verdicts,
    fill_event_flow,
    fill_org_store,
)

from dashboard import buckets, dlqs, rule_metrics
from dashboard import route_map as routes
from dashboard import verdicts as vd
from dashboard.data import open_store
from dashboard.filters import Filters
from orgscope.durations import bucket_text
from orgscope.store import Store


@pytest.fixture(scope="module")
def sample_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sample_now: datetime) -> Store:
    """Two days of the sample organization, shared by the read-only tests of this module."""
    flow_store = open_store(str(tmp_path_factory.mktemp("flow") / "data"))
    fill_org_store(flow_store, sample_now)
    fill_event_flow(flow_store, sample_now, days=2)
    return flow_store


@pytest.fixture
def now(sample_now: datetime) -> datetime:
    return sample_now


def _key(verdicts: pd.DataFrame, rule: str) -> vd.RuleKey:
    return next(key for key in vd.rule_keys(verdicts) if key.rule == rule)


def test_verdicts_are_the_latest_evaluation_most_urgent_first(store: Store):
    verdicts = vd.rule_verdicts(store, Filters())
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


def test_verdict_counts_cover_every_verdict(store: Store):
    counts = vd.verdict_counts(vd.rule_verdicts(store, Filters()))
    assert counts == {"OK": 20, "DEGRADED": 1, "SILENT": 1, "FAILING": 1, "DISABLED": 4,
                      "STALE": 2}
    raw = store.query("SELECT verdict, count(*) AS n FROM rule_health GROUP BY verdict")
    assert counts == {v: int(raw.set_index("verdict")["n"].get(v, 0)) for v in counts}


def test_filters_narrow_verdicts(store: Store):
    by_team = vd.rule_verdicts(store, Filters(teams=("payments",)))
    assert set(by_team["account_id"]) == {UNREACHABLE_ID}
    assert set(by_team["verdict"]) == {"STALE"}
    by_account = vd.rule_verdicts(store, Filters(account_ids=(CENTRAL,)))
    assert set(by_account["account"]) == {"event-bus"} and len(by_account) == 15
    assert vd.rule_verdicts(store, Filters(regions=("eu-west-1",))).empty


def test_rules_without_a_verdict_are_listed_as_not_judged(empty_store: Store, now: datetime):
    store = open_store(empty_store.base)
    fill_org_store(store, now)
    verdicts = vd.rule_verdicts(store, Filters())
    assert len(verdicts) > 0
    assert set(verdicts["verdict"]) == {vd.NO_VERDICT}
    assert sum(vd.verdict_counts(verdicts).values()) == 0
    assert not rule_metrics.metrics_present(store)


def test_funnel_sums_match_the_stored_metrics(store: Store, now: datetime):
    verdicts = vd.rule_verdicts(store, Filters())
    key = _key(verdicts, FAILING_RULE)
    since, until = buckets.window(Filters(time_range="24h"), now)
    funnel = rule_metrics.rule_funnel(store, key, since, until).set_index("metric")
    raw = store.query(
        "SELECT metric, sum(value) AS v FROM event_metrics WHERE rule = ? AND ts >= ? "
        "AND ts < ? GROUP BY metric", [FAILING_RULE, since, until]).set_index("metric")["v"]
    for metric in ("MatchedEvents", "Invocations", "FailedInvocations", "InvocationsSentToDlq"):
        assert funnel.at[metric, "value"] == raw[metric]
    assert funnel.at["FailedInvocations", "value"] > 0
    assert list(funnel["stage"][:6]) == [stage for stage, _ in rule_metrics.FUNNEL]


def test_funnel_of_a_rule_without_metrics_says_no_data(store: Store, now: datetime):
    ghost = vd.RuleKey(CENTRAL, "us-east-1", "central-bus", "no-such-rule")
    funnel = rule_metrics.rule_funnel(store, ghost, now - timedelta(hours=1), now)
    assert funnel["periods"].sum() == 0 and funnel["value"].sum() == 0


def test_series_is_bucketed_to_the_chart_and_keeps_the_totals(store: Store, now: datetime):
    verdicts = vd.rule_verdicts(store, Filters())
    key = _key(verdicts, FAILING_RULE)
    since, until = buckets.window(Filters(time_range="30d"), now)
    series = rule_metrics.rule_series(store, key, "MatchedEvents", since, until)
    assert len(series) <= buckets.MAX_POINTS
    assert (series["bucket"].diff().dropna() == pd.Timedelta(hours=3)).all()
    raw = store.query("SELECT sum(value) AS v FROM event_metrics WHERE rule = ? AND "
                      "metric = 'MatchedEvents' AND ts >= ?", [FAILING_RULE, series["bucket"][0]])
    assert series["value"].sum() == pytest.approx(float(raw["v"].iloc[0]))
    # 28 days of the 30 have no data: no data is NaN, not 0
    assert series["value"].isna().sum() > 200


def test_series_shows_a_silent_rule_below_its_band(store: Store, now: datetime):
    verdicts = vd.rule_verdicts(store, Filters())
    key = _key(verdicts, SILENT_RULE)
    since, until = buckets.window(Filters(time_range="6h"), now)
    series = rule_metrics.rule_series(store, key, "MatchedEvents", since, until)
    assert len(series) == 72
    recent = series[series["bucket"] >= pd.Timestamp(now) - timedelta(hours=2)]
    assert (recent["value"].dropna() == 0).all()
    assert pd.isna(series["value"].iloc[-1]), "the period being collected is no data, not 0"
    assert (recent["expected"] > 0).any()
    older = series[series["bucket"] < pd.Timestamp(now) - timedelta(hours=4)]
    assert (older["value"] > 0).any()


def test_latency_is_averaged_not_summed(store: Store, now: datetime):
    verdicts = vd.rule_verdicts(store, Filters())
    key = _key(verdicts, DEGRADED_RULE)
    since, until = buckets.window(Filters(time_range="24h"), now)
    series = rule_metrics.rule_series(store, key, "IngestionToInvocationStartLatency", since, until)
    values = series["value"].dropna()
    assert values.max() < 400 and values.min() > 50


def test_bucket_for_keeps_at_most_max_points():
    assert buckets.bucket_for(timedelta(hours=1)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(hours=24)) == timedelta(minutes=5)
    assert buckets.bucket_for(timedelta(days=7)) == timedelta(hours=1)
    assert buckets.bucket_for(timedelta(days=30)) == timedelta(hours=3)
    assert buckets.bucket_for(timedelta(days=3650)) == timedelta(days=13)
    assert bucket_text(timedelta(hours=3)) == "3 h"


def test_dlqs_latest_deepest_first_and_bucketed(store: Store, now: datetime):
    latest = dlqs.dlq_latest(store, Filters())
    assert latest["queue"].iloc[0] == f"{FAILING_RULE}-dlq"
    assert latest["visible"].iloc[0] > 0 and (latest["visible"].iloc[1:] == 0).all()
    since, until = buckets.window(Filters(time_range="30d"), now)
    series = dlqs.dlq_series(store, Filters(), since, until)
    assert series.groupby("queue_arn").size().max() <= buckets.MAX_POINTS
    assert dlqs.dlq_latest(store, Filters(teams=("payments",))).empty


def test_route_map_follows_cross_account_bus_targets(store: Store):
    verdicts = vd.rule_verdicts(store, Filters())
    rules, buses = routes.route_inputs(store, Filters())
    names = {"777777777777": "order-processing", CENTRAL: "event-bus"}
    graph = routes.route_map(rules, buses, verdicts, names)
    label = dict(enumerate(graph.nodes["label"]))
    edges = {(label[s], label[t]) for s, t in zip(graph.links["source"], graph.links["target"],
                                                   strict=True)}
    assert ("order-placed-to-orders", "default · order-processing") in edges
    assert ("default · order-processing", "orders-from-central") in edges
    assert ("quickgrocer.customer-web", "central-bus · event-bus") in edges
    assert ("customer-web" if "111111111111" in names else "111111111111",
            "central-bus · event-bus") in edges
    failing = graph.nodes[graph.nodes["label"] == FAILING_RULE].iloc[0]
    assert failing["colour"] == vd.VERDICT_COLOURS["FAILING"]
    narrowed = routes.route_map(rules, buses, verdicts, names, only_not_ok=True)
    kept = set(narrowed.nodes.loc[narrowed.nodes["kind"] == "rule", "label"])
    assert FAILING_RULE in kept and "order-placed-to-orders" not in kept


def test_route_map_breaks_loops():
    rules = pd.DataFrame([{
        "account_id": "1", "region": "r", "bus": "b", "rule": "loop", "state": "ENABLED",
        "event_pattern": None,
        "targets": json.dumps([{"arn": "arn:aws:events:r:1:event-bus/b"}]),
    }])
    buses = pd.DataFrame(columns=["account_id", "region", "bus", "arn", "allowed_principals"])
    graph = routes.route_map(rules, buses, pd.DataFrame(columns=[
        "account_id", "region", "bus", "rule", "verdict", "reasons"]), {})
    assert any(graph.nodes["label"].str.endswith("(loop)"))
    assert len(graph.links) == 2


def test_matrix_by_team_takes_the_most_urgent_verdict(store: Store):
    verdicts = vd.rule_verdicts(store, Filters())
    cells = vd.verdict_matrix(verdicts, rows="team")
    platform = cells[(cells["row"] == "platform") & (cells["rule"] == FAILING_RULE)].iloc[0]
    assert platform["verdict"] == "FAILING"
    assert "failed invocations" in platform["hover"]
    with pytest.raises(ValueError, match="rows must be"):
        vd.verdict_matrix(verdicts, rows="region")


def test_export_joins_reasons(store: Store):
    export = vd.verdict_export(vd.rule_verdicts(store, Filters()))
    row = export[export["rule"] == SILENT_RULE].iloc[0]
    assert " | " in row["reasons"] and row["verdict"] == "SILENT"
    assert rule_metrics.metrics_present(store)


def test_rule_key_round_trips():
    key = vd.RuleKey("1", "us-east-1", "central-bus", "r")
    assert vd.RuleKey.decode(key.encode()) == key


def test_a_rules_own_team_tag_sets_its_team_and_the_team_filter(
        tmp_path_factory: pytest.TempPathFactory, sample_now: datetime) -> None:
    tagged = open_store(str(tmp_path_factory.mktemp("owned") / "data"))
    fill_org_store(tagged, sample_now)
    fill_event_flow(tagged, sample_now, days=1)
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
