"""The runner: fan-out, isolation of failures, run rows, API call counting."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

from orgscope import plugins
from orgscope.aws import AccessError, SessionFactory
from orgscope.collect import CollectContext, Collected, Collector, Frames
from orgscope.config import Config
from orgscope.datasets import Dataset
from orgscope.datasets.spine import DATASETS as SPINE_DATASETS
from orgscope.runner import DiscoveryError, Runner, count_call, stages
from orgscope.store import Store

PINGS = Dataset(
    name="pings",
    description="test dataset",
    time_column="at",
    schema=pa.schema([pa.field("account_id", pa.string()), pa.field("at", pa.timestamp("us",
                                                                                      tz="UTC"))]),
)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeFactory:
    """Stands in for SessionFactory: some accounts cannot be assumed."""

    def __init__(self, unreachable: set[str]) -> None:
        self.unreachable = unreachable

    def session(self, account_id: str, role: Any = None) -> object:
        if account_id in self.unreachable:
            raise AccessError(account_id, "cannot assume OrgScopeReadOnly: AccessDenied")
        return object()

    def client(self, account_id: str, service: str, region: str, role: Any = None) -> object:
        return {"account": account_id, "service": service}


def ping(ctx: CollectContext) -> Frames:
    count_call("events", "ListRules", {})
    if ctx.account.id == "555555555555":  # refused at its first call: it read nothing
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "ListRules")
    count_call("cloudwatch", "GetMetricData", {"MetricDataQueries": [1, 2, 3]})
    count_call("xray", "BatchGetTraces", {"TraceIds": ["a", "b"]})
    if ctx.account.id == "333333333333":
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                          "ListRules")
    if ctx.account.id == "666666666666":
        raise RuntimeError("a bug")
    frame = pd.DataFrame([{"account_id": ctx.account.id, "at": ctx.collected_at}])
    if ctx.account.id == "777777777777":
        frame["extra"] = 1  # breaks the contract
    return {"pings": frame}


PING = Collector(name="ping", fn=ping, datasets=(PINGS,), scope="regional", description="t",
                 iam_actions=("events:ListRules",), checks_reachability=True)


def make_runner(config: Config, unreachable: set[str]) -> Runner:
    store = Store(config.store.path, [PINGS, *SPINE_DATASETS])
    return Runner(config, cast(SessionFactory, FakeFactory(unreachable)), store)


def test_failures_stay_inside_their_account(config: Config) -> None:
    runner = make_runner(config, unreachable={"444444444444"})
    cycle = runner.run_cycle([PING], now=NOW)
    by_account = {run.account.id: run for run in cycle.runs}
    assert len(cycle.runs) == 13
    assert by_account["111111111111"].status == "ok"
    assert by_account["444444444444"].error == (
        "account unreachable: cannot assume OrgScopeReadOnly: AccessDenied")
    assert by_account["333333333333"].error == "ThrottlingException on ListRules: slow down"
    assert by_account["666666666666"].error == "RuntimeError: a bug"
    assert by_account["777777777777"].error is not None
    assert "unexpected columns ['extra']" in by_account["777777777777"].error
    stored = runner.store.query("select account_id from pings order by 1")["account_id"].tolist()
    assert len(stored) == 8  # 13 accounts less the five that failed
    assert "777777777777" not in stored


def test_reachability_separates_denied_from_other_errors(config: Config) -> None:
    runner = make_runner(config, unreachable={"444444444444"})
    runner.run_cycle([PING], now=NOW)
    accounts = runner.store.query(
        "select account_id, reachable, reason from accounts order by account_id")
    status = {row.account_id: (row.reachable, row.reason) for row in accounts.itertuples()}
    assert status["444444444444"] == (False, "cannot assume OrgScopeReadOnly: AccessDenied")
    # assumed, but its only read was refused: nothing can be read
    assert status["555555555555"] == (
        False, "the read role was assumed but every read was refused: events:ListRules (ping) "
               "(AWS: AccessDeniedException on ListRules: no)")
    assert status["333333333333"][0]  # throttled is not unreachable
    assert status["111111111111"][0] and pd.isna(status["111111111111"][1])


def read_rules(ctx: CollectContext) -> Frames:
    """A reachability collector that reads fine everywhere."""
    count_call("events", "ListRules", {})
    return {"pings": pd.DataFrame([{"account_id": ctx.account.id, "at": ctx.collected_at}])}


def pong(ctx: CollectContext) -> Frames:
    """A second collector whose one action the role in 555555555555 lacks."""
    count_call("logs", "FilterLogEvents", {})
    if ctx.account.id == "555555555555":
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message":
                                     "User: arn:aws:sts::555555555555:assumed-role/R is not "
                                     "authorized to perform: logs:FilterLogEvents"}},
                          "FilterLogEvents")
    return {"pings": pd.DataFrame([{"account_id": ctx.account.id, "at": ctx.collected_at}])}


def test_one_collectors_missing_permission_leaves_the_account_readable_with_a_gap(
        config: Config) -> None:
    pongs = Collector(name="pong", fn=pong, datasets=(PINGS,), scope="regional",
                      description="t", iam_actions=("logs:FilterLogEvents",))
    ok = Collector(name="ping", fn=read_rules, datasets=(PINGS,), scope="regional",
                   description="t", iam_actions=("events:ListRules",), checks_reachability=True)
    runner = make_runner(config, unreachable={"444444444444"})
    cycle = runner.run_cycle([ok, pongs], now=NOW)
    assert cycle.access["555555555555"].access == "partial"
    assert cycle.access["555555555555"].denied_labels() == ["logs:FilterLogEvents (pong)"]
    assert cycle.access["444444444444"].access == "unreachable"
    assert cycle.access["111111111111"].access == "readable"
    accounts = runner.store.query("select account_id, reachable, reason from accounts")
    row = accounts.set_index("account_id").loc["555555555555"]
    assert bool(row["reachable"])
    assert row["reason"] == "readable with gaps: refused logs:FilterLogEvents (pong)"
    assert cycle.reachability["555555555555"] is None


def test_run_rows_record_calls_and_metrics(config: Config) -> None:
    runner = make_runner(config, unreachable=set())
    cycle = runner.run_cycle([PING], now=NOW)
    runs = runner.store.query("select * from runs where account_id = '111111111111'")
    row = runs.iloc[0]
    assert row["collector"] == "ping" and row["status"] == "ok"
    assert row["api_calls"] == 3
    assert row["metrics_requested"] == 3
    assert row["traces_retrieved"] == 2
    assert json.loads(row["api_calls_by_operation"]) == {
        "cloudwatch:GetMetricData": 1, "events:ListRules": 1, "xray:BatchGetTraces": 1}
    assert row["rows"] == 1
    assert row["run_id"] == cycle.cycle_id
    assert len(runner.store.query("select * from runs")) == 13


def test_progress_is_reported_for_every_run(config: Config) -> None:
    runner = make_runner(config, unreachable={"444444444444"})
    seen: list[tuple[int, int]] = []
    runner.run_cycle([PING], progress=lambda done, total, _r: seen.append((done, total)), now=NOW)
    assert sorted(seen) == [(i, 13) for i in range(1, 14)]


def test_payer_collectors_run_once_in_the_management_account(config: Config) -> None:
    payer = Collector(name="ping", fn=ping, datasets=(PINGS,), scope="payer", description="t",
                      iam_actions=())
    runner = make_runner(config, unreachable=set())
    cycle = runner.run_cycle([payer], now=NOW)
    assert [(r.account.id, r.region) for r in cycle.runs] == [("101010101010", "us-east-1")]


def test_local_collectors_run_once_even_when_the_monitoring_account_is_unreachable(
        config: Config) -> None:
    local = Collector(name="ping", fn=ping, datasets=(PINGS,), scope="local", description="t",
                      iam_actions=())
    runner = make_runner(config, unreachable={"131313131313"})
    cycle = runner.run_cycle([local], now=NOW)
    assert [(r.account.id, r.region, r.status) for r in cycle.runs] == \
        [("131313131313", "us-east-1", "ok")]


class DeniedFactory(FakeFactory):
    def client(self, account_id: str, service: str, region: str, role: Any = None) -> object:
        raise AccessError(account_id, "cannot assume OrgScopeReadOnly: AccessDenied")


def test_failed_discovery_falls_back_to_listed_accounts(config: Config) -> None:
    organization = config.organization.model_copy(update={"discovery": "organizations"})
    config = config.model_copy(update={"organization": organization})
    runner = Runner(config, cast(SessionFactory, DeniedFactory(set())),
                    Store(config.store.path, SPINE_DATASETS))
    assert len(runner.accounts()) == 13


def test_failed_discovery_without_listed_accounts_says_why(config: Config) -> None:
    organization = config.organization.model_copy(update={"discovery": "organizations"})
    config = config.model_copy(update={"organization": organization, "accounts": []})
    runner = Runner(config, cast(SessionFactory, DeniedFactory(set())),
                    Store(config.store.path, SPINE_DATASETS))
    with pytest.raises(DiscoveryError, match="cannot list the organization's accounts from "
                                             "101010101010: cannot assume"):
        runner.accounts()


def incremental(ctx: CollectContext) -> Collected:
    """Reports how far it read: its watermark must come back on the next run."""
    seen = ctx.watermark.isoformat() if ctx.watermark else "none"
    count_call("events", f"Seen:{seen}", {})
    rules = ctx.input("rules_like")
    frame = pd.DataFrame([{"account_id": ctx.account.id, "at": ctx.collected_at}])
    assert len(rules) == 1
    return Collected({"pings": frame}, watermark=ctx.collected_at)


def test_watermarks_and_inputs_reach_the_next_run(config: Config) -> None:
    rules_like = Dataset(name="rules_like", description="t", time_column="at",
                         schema=PINGS.schema, snapshot_of=("account_id",))
    collector = Collector(name="inc", fn=incremental, datasets=(PINGS,), scope="regional",
                          description="t", iam_actions=(), inputs=("rules_like",))
    store = Store(config.store.path, [PINGS, rules_like, *SPINE_DATASETS])
    store.write("rules_like", pd.DataFrame([{"account_id": "1", "at": NOW}]), "seed")
    runner = Runner(config, cast(SessionFactory, FakeFactory(set())), store)
    first = runner.run_cycle([collector], now=NOW)
    assert {run.calls.by_operation.most_common(1)[0][0] for run in first.runs} == {
        "events:Seen:none"}
    later = NOW + timedelta(minutes=5)
    second = runner.run_cycle([collector], now=later)
    assert {run.calls.by_operation.most_common(1)[0][0] for run in second.runs} == {
        f"events:Seen:{NOW.isoformat()}"}
    marks = store.query("select distinct watermark from watermarks")["watermark"].tolist()
    assert [m.to_pydatetime() for m in marks] == [later]


def test_stages_put_producers_before_their_readers() -> None:
    names = [[c.name for c in stage] for stage in stages(list(plugins.COLLECTORS.values()))]
    first = names[0]
    assert "inventory" in first and "metrics" not in first and "dlq" not in first
    assert any("metrics" in stage for stage in names[1:])
    only_metrics = stages([plugins.COLLECTORS["metrics"]])
    assert [[c.name for c in s] for s in only_metrics] == [["metrics"]]


def test_scheduler_starts_readers_after_the_inventory(config: Config) -> None:
    from orgscope.scheduler import STAGE_DELAY, build_scheduler

    runner = make_runner(config, unreachable=set())
    scheduler = build_scheduler(runner, list(plugins.COLLECTORS.values()), plugins.run_steps)
    first = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    assert first["metrics"] - first["inventory"] >= STAGE_DELAY
    assert first["dlq"] - first["inventory"] >= STAGE_DELAY


def test_with_a_change_feed_the_inventory_is_an_hourly_reconciliation(config: Config) -> None:
    from orgscope.scheduler import build_scheduler

    def intervals(settings: Config) -> dict[str, float]:
        runner = make_runner(settings, unreachable=set())
        scheduler = build_scheduler(runner, list(plugins.COLLECTORS.values()),
                                    plugins.run_steps)
        return {job.id: job.trigger.interval.total_seconds() for job in scheduler.get_jobs()
                if job.id != "compact"}

    without = intervals(config)
    assert without["inventory"] == without["metrics"] == 300
    changes = config.changes.model_copy(update={
        "queue_url": "https://sqs.us-east-1.amazonaws.com/101010101010/orgscope-changes"})
    fed = intervals(config.model_copy(update={"changes": changes}))
    assert fed["inventory"] == 3600
    assert fed["metrics"] == 300


def test_only_reachability_checks_write_the_accounts_snapshot(config: Config) -> None:
    other = Collector(name="ping", fn=ping, datasets=(PINGS,), scope="regional",
                      description="t", iam_actions=())
    runner = make_runner(config, unreachable=set())
    runner.run_cycle([other], now=NOW)  # 555... is denied here, but that is this run's failure
    assert runner.store.query("select count(*) as n from accounts")["n"][0] == 0
    denied = runner.store.query("select error from runs where account_id = '555555555555'")
    assert denied["error"][0] == "AccessDeniedException on ListRules: no"


def test_a_refused_action_is_logged_once_per_account_and_action(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    pongs = Collector(name="pong", fn=pong, datasets=(PINGS,), scope="regional",
                      description="t", iam_actions=("logs:FilterLogEvents",))
    runner = make_runner(config, unreachable=set())
    with caplog.at_level(logging.DEBUG, logger="orgscope.runner"):
        runner.run_cycle([pongs], now=NOW)
        runner.run_cycle([pongs], now=NOW)
    said = [r for r in caplog.records if "may not logs:FilterLogEvents" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG]
    assert "555555555555" in said[0].getMessage() and "not authorized" in said[0].getMessage()


def test_probes_name_refusals_per_collector_and_what_proved_nothing(config: Config) -> None:
    def refused(ctx: CollectContext) -> object:
        if ctx.account.id == "555555555555":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                              "GetMetricData")
        return {}

    def missing(ctx: CollectContext) -> object:  # a made-up resource: the action is allowed
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "x"}},
                          "ListTargetsByRule")

    def throttled(ctx: CollectContext) -> object:
        if ctx.account.id == "666666666666":
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}},
                              "ListRules")
        return {}

    metrics = Collector(name="m", fn=read_rules, datasets=(PINGS,), scope="regional",
                        description="t", iam_actions=("cloudwatch:GetMetricData",),
                        probes=(("cloudwatch:GetMetricData", refused),))
    dlq = Collector(name="d", fn=read_rules, datasets=(PINGS,), scope="regional",
                    description="t", iam_actions=("cloudwatch:GetMetricData",),
                    probes=(("cloudwatch:GetMetricData", refused),))
    inventory = Collector(name="i", fn=read_rules, datasets=(PINGS,), scope="regional",
                          description="t",
                          iam_actions=("events:ListTargetsByRule", "events:ListRules"),
                          probes=(("events:ListTargetsByRule", missing),
                                  ("events:ListRules", throttled)))
    runner = make_runner(config, unreachable={"444444444444"})
    accounts, states, unknown = runner.probe_access([metrics, dlq, inventory], now=NOW)
    assert len(accounts) == 13
    assert states["444444444444"].access == "unreachable"
    # one shared action refused: charged to both collectors needing it
    assert states["555555555555"].access == "partial"
    assert states["555555555555"].denied_labels() == [
        "cloudwatch:GetMetricData (d)", "cloudwatch:GetMetricData (m)"]
    assert states["111111111111"].access == "readable"  # "not found" proves the action
    # throttling proves nothing either way: reported, not called allowed
    assert unknown == {"666666666666": [
        "events:ListRules in us-east-1: ThrottlingException on ListRules: slow"]}


class RevokedFactory(FakeFactory):
    """A factory whose first credentials per account AWS refuses as expired."""

    def __init__(self) -> None:
        super().__init__(set())
        self.forgotten: list[str] = []

    def client(self, account_id: str, service: str, region: str, role: Any = None) -> object:
        return {"account": account_id, "fresh": account_id in self.forgotten}

    def forget(self, account_id: str, role: Any = None) -> None:
        self.forgotten.append(account_id)


def expiring_ping(ctx: CollectContext) -> Frames:
    if not ctx.client("events")["fresh"]:
        raise ClientError({"Error": {"Code": "ExpiredTokenException",
                                     "Message": "The security token included in the request is "
                                                "expired"}}, "ListRules")
    return {"pings": pd.DataFrame([{"account_id": ctx.account.id, "at": ctx.collected_at}])}


def test_credentials_refused_as_expired_are_assumed_again_and_the_run_completes(
        config: Config) -> None:
    factory = RevokedFactory()
    store = Store(config.store.path, [PINGS, *SPINE_DATASETS])
    runner = Runner(config, cast(SessionFactory, factory), store)
    collector = Collector(name="ping", fn=expiring_ping, datasets=(PINGS,), scope="regional",
                          description="t", iam_actions=("events:ListRules",))
    cycle = runner.run_cycle([collector], now=NOW)
    assert {run.status for run in cycle.runs} == {"ok"}
    assert sorted(factory.forgotten) == sorted({run.account.id for run in cycle.runs})
    assert len(store.query("select * from pings")) == len(cycle.runs)  # one row each, none lost


def test_a_witness_cycle_moves_only_what_it_knows_of_the_role() -> None:
    from orgscope.access import NO_READ_REASON, AccountAccess
    from orgscope.runner import reachability_moves

    readable = AccountAccess("readable", (), None)
    gone = AccountAccess("unreachable", (), "cannot assume OrgScopeReadOnly: AccessDenied")
    latest = {"1": (True, None), "2": (False, "cannot assume OrgScopeReadOnly: AccessDenied"),
              "3": (False, NO_READ_REASON + ": events:ListRules"), "4": (True, None)}
    moved = reachability_moves(latest, {"1": gone, "2": readable, "3": readable,
                                        "4": readable, "5": gone})
    # 1 broke, 2 came back, 5 was never recorded; 3's refusal waits for the inventory
    assert moved == {"1": gone, "2": readable, "5": gone}
