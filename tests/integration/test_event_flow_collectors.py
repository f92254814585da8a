"""The metrics and DLQ collectors against the simulated organization, through the Runner.

The simulator writes 1-minute AWS/Events datapoints up to its clock (``sim.tick(now)`` moves
it); the collectors read them back through boto3 and the read role, exactly as from AWS. The
tests run in file order on one simulator, each moving the clock forward from where the last
left it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config as BotoConfig

from collectors.metrics import floor_to_period
from orgscope import plugins, wiring
from orgscope.config import Config
from orgscope.datasets import ACCOUNT_METRICS, ACCOUNT_SIGNALS, RULE_METRICS, RULE_SIGNALS
from orgscope.runner import CycleResult, Runner
from sim.scenario import ScenarioEvent
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

PERIOD = timedelta(minutes=5)
CENTRAL = "121212121212"
DISABLED = (CENTRAL, "central-bus", "order-placed-to-inventory")
FAILING = ("999999999999", "default", "order-placed-to-payments")
GONE = "arn:aws:sqs:us-east-1:999999999999:no-such-dlq"


@dataclass
class Flow:
    """The simulator, a runner on a config reading 1 h of history, and the first cycles."""

    org: Org
    runner: Runner
    base: datetime  # end of the back-fill: the period the simulator's clock started in
    backfill: CycleResult
    incremental: CycleResult

    def metrics(self, now: datetime) -> CycleResult:
        self.org.sim.tick(now)
        return self.runner.run_cycle([plugins.collector("metrics")], now=now)

    def stored(self, key: tuple[str, str, str], metric: str) -> dict[datetime, set[float]]:
        account, bus, rule = key
        rows = self.org.query(
            f"select ts, value from event_metrics where account_id = '{account}' and "
            f"bus = '{bus}' and rule = '{rule}' and metric = '{metric}'")
        found: dict[datetime, set[float]] = {}
        for row in rows:
            ts = row["ts"].to_pydatetime()  # type: ignore[attr-defined]
            found.setdefault(ts, set()).add(float(row["value"]))  # type: ignore[arg-type]
        return found

    def aws_sums(self, key: tuple[str, str, str], metric: str, start: datetime,
                 end: datetime, period: timedelta = PERIOD) -> dict[datetime, float]:
        """What the simulator wrote, read back one metric at a time with admin rights, summed
        per ``period``. (moto's GetMetricStatistics starts its buckets at the first datapoint,
        not at StartTime: ask for minutes and sum them here.)"""
        account, bus, rule = key
        dims = [{"Name": "RuleName", "Value": rule}]
        if bus != "default":
            dims.insert(0, {"Name": "EventBusName", "Value": bus})
        answer = self.org.sim.admin.client(account, "cloudwatch").get_metric_statistics(
            Namespace="AWS/Events", MetricName=metric, Dimensions=dims, StartTime=start,
            EndTime=end, Period=60, Statistics=["Sum"])
        sums: dict[datetime, float] = {}
        for point in answer["Datapoints"]:
            ts = floor_to_period(point["Timestamp"], int(period.total_seconds()))
            sums[ts] = sums.get(ts, 0.0) + point["Sum"]
        return sums


def with_collectors(config: Config) -> Config:
    return config.with_collector("metrics", backfill=timedelta(hours=1)) \
        .with_collector("dlq", queues=[GONE])


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    with simulated_org(tmp_path_factory.mktemp("flow")) as org:
        runner = wiring.runner(with_collectors(wiring.load(org.config_path)))
        started = org.sim.started_at
        assert started is not None
        base = floor_to_period(started, 300)
        runner.run_cycle([plugins.collector("inventory")], now=started)
        backfill = runner.run_cycle([plugins.collector("metrics")], now=started)
        org.sim.tick(base + PERIOD)
        incremental = runner.run_cycle([plugins.collector("metrics")], now=base + PERIOD)
        yield Flow(org, runner, base, backfill, incremental)


def calls(cycle: CycleResult) -> dict[str, dict[str, Any]]:
    return {run.account.id: {"ops": dict(run.calls.by_operation),
                             "metrics": run.calls.metrics_requested, "status": run.status}
            for run in cycle.runs}


def test_every_account_backfills_and_stores_what_the_simulator_wrote(flow: Flow) -> None:
    assert {run.status for run in flow.backfill.runs} == {"ok"}
    start = flow.base - timedelta(hours=1)
    busy = [key for key in flow.org.sim.deployment.rules
            if sum(flow.aws_sums(key, "MatchedEvents", start, flow.base).values()) > 0]
    assert busy, "the simulator wrote no MatchedEvents"
    for key in busy[:3]:
        stored = flow.stored(key, "MatchedEvents")
        written = flow.aws_sums(key, "MatchedEvents", start, flow.base + PERIOD)
        periods = {start + i * PERIOD for i in range(13)}
        assert set(stored) == periods  # every period of the window, zero-filled
        for ts, values in stored.items():
            assert values == {written.get(ts, 0.0)}, (key, ts)  # re-reads agree


def test_count_gaps_are_zero_filled_and_latency_is_not(flow: Flow) -> None:
    key = flow.org.sim.deployment.rules[0]
    start = flow.base - timedelta(hours=1)
    assert flow.aws_sums(key, "FailedInvocations", start, flow.base) == {}  # AWS omits zeros
    failed = flow.stored(key, "FailedInvocations")
    # the back-fill's 12 periods, zero-filled; the fast run after it read the account's
    # FailedInvocations across all rules (quiet here), not each rule's
    assert len(failed) == 12 and set().union(*failed.values()) == {0.0}
    latency = flow.stored(key, "IngestionToInvocationStartLatency")
    matched = flow.stored(key, "MatchedEvents")
    assert len(latency) <= len([ts for ts, v in matched.items() if v != {0.0}])
    assert all(v > 0 for values in latency.values() for v in values)


def test_watermark_advances_and_the_next_run_rereads_only_the_overlap(flow: Flow) -> None:
    marks = flow.org.query("select account_id, watermark from watermarks_history "
                           "where collector = 'metrics' order by updated_at")
    by_account: dict[str, list[datetime]] = {}
    for row in marks:
        by_account.setdefault(str(row["account_id"]), []).append(
            row["watermark"].to_pydatetime())  # type: ignore[attr-defined]
    assert len(by_account) == 13
    assert all(v == [flow.base, flow.base + PERIOD] for v in by_account.values())
    stamps = {ts for run in flow.incremental.runs
              for ts in run.frames["event_metrics"]["ts"]}
    assert stamps == {flow.base - 2 * PERIOD, flow.base - PERIOD, flow.base}


def stored_tiers(flow: Flow) -> list[object]:
    rows = flow.org.query(f"select tier from runs where run_id = '{flow.incremental.cycle_id}'")
    return [row["tier"] for row in rows]


def test_an_incremental_cycle_reads_the_fast_tier(flow: Flow) -> None:
    rules: dict[str, int] = {}
    for account, _, _ in flow.org.sim.deployment.rules:
        rules[account] = rules.get(account, 0) + 1
    stored = flow.org.query(
        "select account_id, api_calls_by_operation, metrics_requested from runs "
        f"where run_id = '{flow.incremental.cycle_id}'")
    assert len(stored) == 13
    full = fast = 0
    for row in stored:
        count = rules.get(str(row["account_id"]), 0)
        full += count * len(RULE_METRICS) + len(ACCOUNT_METRICS)
        # the fast tier: each rule's activity metric, the signals across all rules, the
        # producer's; a call more when a signal was loud and drilled down to the rules, and
        # one more for the companions of the rules where it was not zero
        series = count + (len(RULE_SIGNALS) if count else 0) + len(ACCOUNT_SIGNALS)
        ops = json.loads(str(row["api_calls_by_operation"]))
        drilled = row["metrics_requested"] > series
        calls = ops.pop("cloudwatch:GetMetricData")
        assert not ops and (calls in (2, 3) if drilled else calls == 1), row
        assert row["metrics_requested"] >= series
        fast += int(row["metrics_requested"])
    assert {str(t) for t in stored_tiers(flow)} == {"fast"}
    assert fast < full / 2


def test_a_disabled_rule_matches_nothing_after_the_fault(flow: Flow) -> None:
    assert DISABLED in flow.org.sim.deployment.rules
    account, bus, rule = DISABLED
    events = flow.org.sim.admin.client(account, "events")
    flow.org.sim.tick(flow.base + PERIOD)  # everything before the fault is written
    events.disable_rule(Name=rule, EventBusName=bus)
    try:
        cycle = flow.metrics(flow.base + 3 * PERIOD)
    finally:
        events.enable_rule(Name=rule, EventBusName=bus)
    assert {run.status for run in cycle.runs} == {"ok"}
    matched = flow.stored(DISABLED, "MatchedEvents")
    assert any(v != {0.0} for ts, v in matched.items() if ts < flow.base)
    after = [flow.base + PERIOD, flow.base + 2 * PERIOD]
    assert [matched[ts] for ts in after] == [{0.0}, {0.0}]
    latency = flow.stored(DISABLED, "IngestionToInvocationStartLatency")
    assert not set(after) & set(latency)  # no data, not a zero


def test_dlq_depth_equals_the_messages_the_simulator_put(flow: Flow) -> None:
    assert FAILING in flow.org.sim.deployment.rules
    account, bus, rule = FAILING
    fault_at = flow.base + 3 * PERIOD
    flow.org.sim.apply(ScenarioEvent(0, timedelta(0), "target_errors",
                                     {"account": account, "bus": bus, "rule": rule,
                                      "rate": 1.0, "duration": "2m"}), fault_at)
    now = fault_at + PERIOD
    flow.org.sim.tick(now)
    cycle = flow.runner.run_cycle([plugins.collector("dlq")], now=now)
    assert {run.status for run in cycle.runs} == {"ok"}  # the missing queue is skipped
    sent = sum(flow.aws_sums(FAILING, "InvocationsSentToDlq", fault_at, now,
                             timedelta(minutes=1)).values())
    assert 0 < sent <= 100  # the simulator puts at most 100 real messages per DLQ per tick
    depth = {str(r["queue_arn"]): r for r in flow.org.query(
        f"select * from dlq_depth where ts = '{now.isoformat()}'")}
    (row,) = flow.org.query(
        f"select dlq_arns[1] as arn from rules where account_id = '{account}' and "
        f"rule = '{rule}' and len(dlq_arns) = 1")
    dlq_arn = str(row["arn"])
    assert depth[dlq_arn]["visible"] == sent
    assert depth[dlq_arn]["account_id"] == account  # read in the queue's own account
    assert depth[dlq_arn]["oldest_age_s"] is None or math.isnan(
        float(depth[dlq_arn]["oldest_age_s"]))  # type: ignore[arg-type]  # moto: no AWS/SQS
    assert set(depth) == set(flow.org.sim.deployment.dlq_urls)
    assert GONE not in depth
    assert all(r["visible"] == 0 for arn, r in depth.items() if arn != dlq_arn)


def test_an_endpoint_down_mid_cycle_loses_no_period_and_duplicates_none(
        flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """CloudWatch stops answering for half the accounts during one cycle (connection refused:
    the endpoint is down); the next cycle reads from the watermark the failed runs kept, so
    every 5-minute period is stored once with what the simulator wrote."""
    factory = flow.runner.factory
    accounts = sorted({account for account, _, _ in flow.org.sim.deployment.rules})
    down = set(accounts[::2])
    real_client = factory.client

    def client(account_id: str, service: str, region: str, role: Any = None) -> Any:
        if service == "cloudwatch" and account_id in down:
            return factory.session(account_id).client(
                "cloudwatch", region_name=region, endpoint_url="http://127.0.0.1:9",
                config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1))
        return real_client(account_id, service, region, role)

    outage = flow.base + 5 * PERIOD
    with monkeypatch.context() as patch:
        patch.setattr(factory, "client", client)
        failed = flow.metrics(outage)
    by_status = {run.account.id: run.status for run in failed.runs}
    assert {a for a, status in by_status.items() if status == "error"} == down
    assert all(status == "ok" for a, status in by_status.items() if a not in down)
    assert all("EndpointConnectionError" in str(run.error) for run in failed.runs
               if run.status == "error")

    after = flow.base + 6 * PERIOD
    assert {run.status for run in flow.metrics(after).runs} == {"ok"}
    start = flow.base - timedelta(hours=1)
    checked = 0
    for key in flow.org.sim.deployment.rules:
        if key[0] not in down or key == DISABLED:
            continue
        written = flow.aws_sums(key, "MatchedEvents", start, after)
        if not written:
            continue
        account, bus, rule = key
        rows = flow.org.query(
            "select ts, count(*) as n, max(value) as value from event_metrics "
            f"where account_id = '{account}' and bus = '{bus}' and rule = '{rule}' "
            "and metric = 'MatchedEvents' group by ts")
        stored = {row["ts"].to_pydatetime(): row for row in rows}  # type: ignore[attr-defined]
        periods = {start + i * PERIOD for i in range(18)}  # every period ended by `after`
        assert periods <= set(stored), sorted(periods - set(stored))  # no period lost
        assert {int(stored[ts]["n"]) for ts in periods} == {1}  # type: ignore[call-overload]
        for ts in periods:
            assert float(stored[ts]["value"]) == written.get(ts, 0.0), (key, ts)  # type: ignore[arg-type]
        checked += 1
    assert checked >= 2
