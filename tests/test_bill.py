"""The monitoring's own bill: usage read from runs, priced at the configured intervals and at
others. Every expected dollar figure is worked out by hand in the comment beside it."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orgscope import bill
from orgscope.config import Config
from orgscope.datasets import RUNS, all_datasets
from orgscope.plugins import parse_config
from orgscope.store import Store
from tests.conftest import reference_data

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
A, B = "111111111111", "999999999999"
MANAGEMENT = "101010101010"


def usage_row(collector: str, account: str = A, *, calls: float = 1, metrics: float = 0,
              ce: float = 0, traces: float = 0, gap_s: float = 300, sampled: int = 5,
              status: str = "ok", error: str | None = None) -> dict[str, Any]:
    return {
        "collector": collector, "account_id": account, "region": "us-east-1",
        "last_started_at": NOW, "last_status": status, "last_error": error,
        "last_duration_s": 1.5, "last_api_calls": calls, "runs": sampled + 1,
        "failed_runs": 0, "sampled_runs": sampled,
        "api_calls": calls if sampled else math.nan,
        "metrics_requested": metrics if sampled else math.nan,
        "ce_requests": ce if sampled else math.nan,
        "traces_retrieved": traces if sampled else math.nan, "duration_s": 1.5, "gap_s": gap_s,
    }


@pytest.fixture
def reference() -> Config:
    # inventory, metrics, dlq 5m; metrics overlap 10m; cost 8h; xray 1m, overlap 2m, cap 500
    return parse_config(reference_data())


def test_each_api_is_priced_at_the_configured_interval(reference: Config) -> None:
    usage = pd.DataFrame([
        usage_row("metrics", metrics=348, calls=1),          # 348 series, one chunk
        usage_row("cost", ce=27, calls=27, gap_s=8 * 3600),
        usage_row("xray", traces=100, calls=21, gap_s=60),
        usage_row("inventory", calls=40),
        usage_row("dlq", metrics=2, calls=10),
    ])
    billed = bill.bill(usage, reference).set_index("collector")
    # metrics: 348 metrics x $0.00001 = $0.00348 a run; 30 d / 5 m = 8,640 runs -> $30.0672
    assert billed.loc["metrics", "runs_per_month"] == pytest.approx(8640)
    assert billed.loc["metrics", "cloudwatch_usd"] == pytest.approx(30.0672)
    # cost: 27 requests x $0.01 = $0.27 a run; 30 d / 8 h = 90 runs -> $24.30
    assert billed.loc["cost", "cost_explorer_usd"] == pytest.approx(24.30)
    # xray: 100 retrieved + 100 scanned = 200 traces x $0.0000005 = $0.0001 a run;
    # 30 d / 1 m = 43,200 runs -> $4.32
    assert billed.loc["xray", "xray_usd"] == pytest.approx(4.32)
    # inventory: free calls only
    assert billed.loc["inventory", "monthly_usd"] == 0
    assert billed.loc["inventory", "api_calls_per_month"] == pytest.approx(40 * 8640)
    # dlq: 2 metrics x $0.00001 x 8,640 = $0.1728
    assert billed.loc["dlq", "monthly_usd"] == pytest.approx(0.1728)
    totals = bill.by_collector(bill.bill(usage, reference))
    assert totals["monthly_usd"].sum() == pytest.approx(30.0672 + 24.30 + 4.32 + 0.1728)
    assert totals["collector"].iloc[0] == "metrics"  # most expensive first


def test_a_longer_metrics_interval_reads_more_chunks_per_run(reference: Config) -> None:
    usage = pd.DataFrame([usage_row("metrics", metrics=348, calls=1)])
    # 1 h + 10 m overlap = 70 minutes = 2 one-hour chunks: 696 metrics a run, 720 runs a
    # month -> 501,120 metrics -> $5.0112
    assert bill.collector_monthly(usage, reference, "metrics", timedelta(hours=1)) == \
        pytest.approx(5.0112)
    # 50 m + 10 m = one chunk: 348 x 864 runs = 300,672 metrics -> $3.00672
    assert bill.collector_monthly(usage, reference, "metrics", timedelta(minutes=50)) == \
        pytest.approx(3.00672)
    # observed at a 1-minute spacing (the demo): 1 m + 10 m is still one chunk, same price
    demo = pd.DataFrame([usage_row("metrics", metrics=348, gap_s=60)])
    assert bill.collector_monthly(demo, reference, "metrics", timedelta(minutes=5)) == \
        pytest.approx(30.0672)


def test_xray_traces_grow_with_the_window_up_to_the_cap(reference: Config) -> None:
    usage = pd.DataFrame([usage_row("xray", traces=100, calls=21, gap_s=60)])
    # observed window 1 m + 2 m = 3 m. At 10 m: 12 m -> 400 scanned, 400 retrieved (< 500):
    # 800 x $0.0000005 = $0.0004 a run x 4,320 runs = $1.728
    assert bill.collector_monthly(usage, reference, "xray", timedelta(minutes=10)) == \
        pytest.approx(1.728)
    # at 1 h: 62 m -> 2,066.67 scanned, 500 retrieved (the cap): 2,566.67 x $0.0000005 x 720
    assert bill.collector_monthly(usage, reference, "xray", timedelta(hours=1)) == \
        pytest.approx((100 * 62 / 3 + 500) * 0.0000005 * 720)
    curve = bill.interval_curve(usage, reference, "xray",
                                [timedelta(minutes=1), timedelta(minutes=10)])
    assert curve["monthly_usd"].tolist() == pytest.approx([4.32, 1.728])


def test_disabled_collectors_cost_nothing_unless_asked_what_if(reference: Config) -> None:
    data = reference_data()
    data["collectors"]["cost"]["enabled"] = False
    config = parse_config(data)
    usage = pd.DataFrame([usage_row("cost", ce=27, gap_s=8 * 3600)])
    assert bill.bill(usage, config)["monthly_usd"].tolist() == [0]
    # what if it ran daily: 27 x $0.01 x 30 runs = $8.10
    assert bill.collector_monthly(usage, config, "cost", timedelta(days=1)) == \
        pytest.approx(8.10)


def test_unreachable_accounts_and_keys_without_an_ok_run(reference: Config) -> None:
    usage = pd.DataFrame([
        usage_row("metrics", A, metrics=100),
        usage_row("metrics", B, sampled=0, status="error",
                  error="account unreachable: AccessDenied on AssumeRole"),
        usage_row("inventory", B, calls=3, status="error", error="ThrottlingException: slow"),
    ])
    billed = bill.bill(usage, reference).set_index(["collector", "account_id"])
    assert billed.loc[("metrics", B), "status"] == "unreachable"
    assert math.isnan(float(row(billed, ("metrics", B))["monthly_usd"]))
    assert billed.loc[("inventory", B), "status"] == "error"
    assert billed.loc[("metrics", A), "status"] == "ok"
    totals = bill.by_collector(bill.bill(usage, reference)).set_index("collector")
    # 100 x $0.00001 x 8,640 = $8.64; the unreachable account adds nothing
    assert totals.loc["metrics", "monthly_usd"] == pytest.approx(8.64)
    assert totals.loc["metrics", "unreachable"] == 1


def test_a_data_export_is_priced_by_its_s3_requests(reference: Config, store: Store) -> None:
    """The cost collector reading a data export: two LISTs and two GETs a run (the current
    and the previous month), priced as S3 requests, not Cost Explorer ones."""
    start = NOW - timedelta(hours=20)
    ops = [{"s3:ListObjectsV2": 13, "s3:GetObject": 13},  # the first run: 13 months
           {"s3:ListObjectsV2": 2, "s3:GetObject": 2}, {"s3:ListObjectsV2": 2, "s3:GetObject": 2}]
    for i, counted in enumerate(ops):
        store.write(RUNS.name, pd.DataFrame([run("cost", MANAGEMENT, start + timedelta(
            hours=8 * i), calls=sum(counted.values()), ops=counted)]), f"r{i:03d}")
    usage = bill.read_usage(store, NOW)
    observed = row(usage.set_index(["collector", "account_id"]), ("cost", MANAGEMENT))
    assert (observed["s3_get_requests"], observed["s3_list_requests"]) == (2, 2)
    assert observed["ce_requests"] == 0
    billed = bill.bill(usage, reference).set_index("collector")
    # 2 x $0.0000004 + 2 x $0.000005 = $0.0000108 a run; 90 runs (8 h) -> $0.000972
    assert billed.loc["cost", "s3_usd"] == pytest.approx(0.000972)
    assert billed.loc["cost", "cost_explorer_usd"] == 0
    assert billed.loc["cost", "monthly_usd"] == pytest.approx(0.000972)
    assert bill.by_collector(bill.bill(usage, reference))["s3_usd"].sum() == \
        pytest.approx(0.000972)


def test_what_if_names_the_known_collectors_for_an_unknown_one(reference: Config) -> None:
    usage = pd.DataFrame([usage_row("metrics", metrics=1)])
    with pytest.raises(ValueError, match=r"no runs of collector 'traces'.*known: metrics"):
        bill.collector_monthly(usage, reference, "traces", timedelta(minutes=5))
    with pytest.raises(ValueError, match="interval must be positive"):
        bill.runs_per_month(timedelta(0))


# --- read_usage over a real store ---------------------------------------------------------------


def run(collector: str, account: str, at: datetime, *, status: str = "ok",
        error: str | None = None, calls: int = 1, metrics: int = 0, ops: dict[str, int] | None
        = None, traces: int | None = 0, duration: float = 1.0) -> dict[str, Any]:
    return {
        "run_id": f"c-{at:%H%M%S}", "collector": collector, "account_id": account,
        "region": "us-east-1", "started_at": at, "duration_s": duration, "status": status,
        "error": error, "api_calls": calls,
        "api_calls_by_operation": json.dumps(ops or {}), "metrics_requested": metrics,
        "traces_retrieved": traces, "rows": 1,
    }


def row(frame: pd.DataFrame, key: tuple[str, str]) -> dict[str, Any]:
    matches = frame.reset_index()
    found = matches[(matches["collector"] == key[0]) & (matches["account_id"] == key[1])]
    return {str(name): value for name, value in found.iloc[0].to_dict().items()}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), all_datasets())


def test_read_usage_leaves_out_the_backfill_run_and_failures(store: Store) -> None:
    start = NOW - timedelta(hours=2)
    rows = [run("metrics", A, start, metrics=348 * 48, calls=48, duration=40)]  # back-fill
    rows += [run("metrics", A, start + timedelta(minutes=5 * i), metrics=348, calls=1,
                 duration=float(i)) for i in (1, 2, 3)]
    rows.append(run("metrics", A, start + timedelta(minutes=20), status="error",
                    error="ThrottlingException: Rate exceeded", calls=2, metrics=348))
    rows += [run("metrics", B, start + timedelta(minutes=5 * i), status="error",
                 error="account unreachable: AccessDenied", calls=0) for i in range(3)]
    # the cost collector's first run reads 13 months (400 requests), the next one 27
    rows += [run("cost", "101010101010", start + timedelta(hours=i), calls=n,
                 ops={"ce:GetCostAndUsage": n, "sts:GetCallerIdentity": 1})
             for i, n in ((0, 400), (1, 27))]
    # older than the lookback: ignored
    rows.append(run("inventory", A, NOW - timedelta(days=5), calls=99))
    for index, written in enumerate(rows):  # one file per run, as the runner writes them
        store.write(RUNS.name, pd.DataFrame([written]), f"r{index:03d}")
    usage = bill.read_usage(store, NOW).set_index(["collector", "account_id"])
    assert sorted(usage.index) == [("cost", "101010101010"), ("metrics", A), ("metrics", B)]
    metrics = row(usage, ("metrics", A))
    assert metrics["runs"] == 5
    assert metrics["failed_runs"] == 1
    assert metrics["sampled_runs"] == 3  # the back-fill and the failed run left out
    assert metrics["metrics_requested"] == 348
    assert metrics["api_calls"] == 1
    assert metrics["duration_s"] == 2.0
    assert metrics["gap_s"] == 300
    assert metrics["last_status"] == "error"
    assert metrics["last_error"].startswith("ThrottlingException")
    assert metrics["last_api_calls"] == 2
    down = row(usage, ("metrics", B))
    assert down["sampled_runs"] == 0 and pd.isna(down["metrics_requested"])
    assert bill.status_of(down["last_status"], down["last_error"]) == "unreachable"
    cost = row(usage, ("cost", "101010101010"))
    assert cost["ce_requests"] == 27 and cost["sampled_runs"] == 1 and cost["gap_s"] == 3600
    newest_two = bill.read_usage(store, NOW, sample=2).set_index(["collector", "account_id"])
    assert newest_two.loc[("metrics", A), "sampled_runs"] == 2


def test_sample_windows_look_back_far_enough_for_the_sample(store: Store) -> None:
    windows = bill.sample_windows(parse_config(reference_data()), ["xray", "metrics", "cost"])
    # 14 runs: xray every minute -> the 1-hour floor; metrics every 5m -> 70m; cost every 8h
    # -> 112 h, capped at the 3-day lookback
    assert windows == {"xray": timedelta(hours=1), "metrics": timedelta(minutes=70),
                       "cost": timedelta(days=3)}
    start = NOW - timedelta(hours=2)
    rows = [run("metrics", A, start + timedelta(minutes=5 * i), metrics=100 * i, calls=1)
            for i in range(1, 5)]
    rows += [run("cost", MANAGEMENT, start, calls=27, ops={"ce:GetCostAndUsage": 27})]
    store.write(RUNS.name, pd.DataFrame(rows), "r")
    usage = bill.read_usage(store, NOW, windows={"metrics": timedelta(minutes=108),
                                                 "cost": timedelta(minutes=30)})
    metrics = row(usage, ("metrics", A))
    # runs at +15 and +20 minutes are in the window; the older one is left out as a back-fill
    assert metrics["sampled_runs"] == 1 and metrics["metrics_requested"] == 400
    assert metrics["runs"] == 4  # the last run and the counts still span the lookback
    cost = row(usage, ("cost", MANAGEMENT))
    assert cost["sampled_runs"] == 0 and cost["last_api_calls"] == 27


def test_read_usage_of_an_empty_store(store: Store) -> None:
    usage = bill.read_usage(store, NOW)
    assert usage.empty and list(usage.columns) == bill.USAGE_COLUMNS
    assert bill.bill(usage, parse_config(reference_data())).empty


# --- orgscope bill ------------------------------------------------------------------------------


def test_the_bill_command_prints_the_same_bill(config_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from orgscope.cli import main

    store = Store(str(config_file.parent / "store"), all_datasets())
    now = datetime.now(UTC)
    rows = [run("metrics", A, now - timedelta(minutes=5 * i), metrics=348) for i in range(4)]
    store.write(RUNS.name, pd.DataFrame(rows), "r")
    assert main(["--config", str(config_file), "bill"]) == 0
    out = capsys.readouterr().out
    # 348 metrics x $0.00001 x 8,640 runs
    assert "estimated monthly bill: $30.07" in out
    assert main(["--config", str(config_file), "bill", "--interval", "metrics=1h",
                 "--accounts"]) == 0
    out = capsys.readouterr().out
    assert "with metrics every 1h: $5.01" in out and A in out
    assert main(["--config", str(config_file), "bill", "--interval", "metrics=2s"]) == 2
    assert "--interval 'metrics=2s': must be between '30s' and '1d'" in capsys.readouterr().err
    assert main(["--config", str(config_file), "bill", "--interval", "nope=5m"]) == 2
    assert "expected COLLECTOR=DURATION" in capsys.readouterr().err


# --- tiers (metrics: fast runs between full ones) ---------------------------------------------


def test_tiers_are_priced_apart_and_the_full_runs_displace_fast_ones(reference: Config) -> None:
    usage = pd.DataFrame([usage_row("metrics/fast", metrics=20, calls=1),
                          usage_row("metrics/full", metrics=348, calls=1, gap_s=3600)])
    billed = bill.bill(usage, reference).set_index("collector")
    # 8,640 five-minute runs a month, 720 of them full: 7,920 fast x 20 x $0.00001 = $1.584
    assert billed.loc["metrics/fast", "runs_per_month"] == pytest.approx(7920)
    assert billed.loc["metrics/fast", "cloudwatch_usd"] == pytest.approx(1.584)
    # 720 full runs x 348 x $0.00001 = $2.5056 (one read of the hour and the overlap)
    assert billed.loc["metrics/full", "runs_per_month"] == pytest.approx(720)
    assert billed.loc["metrics/full", "cloudwatch_usd"] == pytest.approx(2.5056)
    # what if metrics ran every 15 minutes: 2,880 runs, 720 full -> 2,160 fast
    assert bill.collector_monthly(usage, reference, "metrics", timedelta(minutes=15)) == \
        pytest.approx(2160 * 20 * 1e-5 + 2.5056)
    # beyond the full tier's interval tiers are off: 360 runs every 2 hours, each reading
    # 2 h + 10 m in three one-hour chunks where the observed full run read one
    assert bill.collector_monthly(usage, reference, "metrics", timedelta(hours=2)) == \
        pytest.approx(2.5056 / 2 * 3)
    # so they are at it (full_interval is no longer longer than interval): 1 h + 10 m is two
    assert bill.collector_monthly(usage, reference, "metrics", timedelta(hours=1)) == \
        pytest.approx(2.5056 * 2)


def test_runs_from_before_the_tiers_are_not_billed_twice(reference: Config) -> None:
    usage = pd.DataFrame([usage_row("metrics", metrics=348),
                          usage_row("metrics/fast", metrics=20),
                          usage_row("metrics", account=B, metrics=348)])
    billed = bill.bill(usage, reference)
    assert sorted(zip(billed["collector"], billed["account_id"], strict=True)) == [
        ("metrics", B), ("metrics/fast", A)]


def test_read_usage_names_a_runs_tier(store: Store) -> None:
    start = NOW - timedelta(hours=2)
    rows = [{**run("metrics", A, start + timedelta(minutes=5 * i), metrics=20),
             "tier": "fast"} for i in range(1, 4)]
    rows.append({**run("metrics", A, start + timedelta(minutes=60), metrics=348), "tier": "full"})
    rows.append(run("inventory", A, start))  # no tier
    for index, written in enumerate(rows):
        store.write(RUNS.name, pd.DataFrame([written]), f"t{index:03d}")
    usage = bill.read_usage(store, NOW)
    assert sorted(usage["collector"]) == ["inventory", "metrics/fast", "metrics/full"]
    fast = row(usage, ("metrics/fast", A))
    assert fast["metrics_requested"] == 20 and fast["gap_s"] == 300
