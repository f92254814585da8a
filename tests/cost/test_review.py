"""Forecast, anomalies, overhead categories, movers, close and diff, the XLSX."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from orgscope.cost import anomalies, categories, review, store_io
from orgscope.datasets import RUNS, all_datasets
from orgscope.store import Store
from testkit.hostile import INVALID_UTF8


def _attributed(rows: list[tuple[date, str, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "team", "service", "usage_type", "amount"])
    return frame.assign(account_id="777777777777", month=[d.strftime("%Y-%m") for d in
                                                           frame["date"]],
                        tagged=True, shared=False, method="Team tag", currency="USD")


def test_an_anomaly_names_the_usage_type_behind_the_jump() -> None:
    start = date(2026, 10, 1)
    rows = []
    for i in range(40):
        day = start + timedelta(days=i)
        rows.append((day, "orders", "EC2 - Other", "EBS:VolumeUsage.gp3", 40.0 + i % 3))
        nat = 60.0 if i == 35 else 10.0 + (i % 2)
        rows.append((day, "orders", "EC2 - Other", "NatGateway-Bytes", nat))
    found = anomalies.detect(_attributed(rows), window=28, z_threshold=4, min_usd=20)
    assert len(found) == 1
    hit = found.iloc[0]
    assert hit["date"] == start + timedelta(days=35)
    assert (hit["team"], hit["service"], hit["usage_type"]) == (
        "orders", "EC2 - Other", "NatGateway-Bytes")
    assert hit["excess"] == pytest.approx(50.0, abs=2)


def test_small_jumps_are_not_anomalies() -> None:
    rows = [(date(2026, 10, 1) + timedelta(days=i), "a", "S", "U", 1.0 if i < 30 else 15.0)
            for i in range(31)]
    assert anomalies.detect(_attributed(rows), window=28, z_threshold=4, min_usd=20).empty


@pytest.mark.parametrize(("service", "usage", "category"), [
    ("CloudWatch Events", "USE1-Event-64K-Chunks", "EventBridge events"),
    ("EC2 - Other", "DataTransfer-Regional-Bytes", "Cross-AZ data transfer"),
    ("EC2 - Other", "EUW1-NatGateway-Bytes", "NAT gateways"),
    ("EC2 - Other", "NatGateway-Hours", "NAT gateways"),
    ("AmazonCloudWatch", "DataProcessing-Bytes", "CloudWatch Logs"),
    ("AWS Secrets Manager", "USE1-AWSSecretsManager-Secrets", "Secrets Manager"),
    ("AWS Systems Manager", "USE1-PS-APIInteractions", "Parameter Store API calls"),
    ("AmazonCloudWatch", "CW:GMD-Metrics", None),
    ("EC2 - Other", "EBS:VolumeUsage.gp3", None),
])
def test_overhead_categories(service: str, usage: str, category: str | None) -> None:
    assert categories.overhead_category(service, usage) == category


def test_the_simulators_overhead_usage_all_map() -> None:
    from sim.costs import OVERHEAD_USAGE

    for category, pairs in OVERHEAD_USAGE.items():
        for service, usage in pairs:
            assert categories.overhead_category(service, usage) == category


def test_api_spend_prices_orgscopes_requests(tmp_path: Path) -> None:
    """Usage summed by the store (bad JSON counts 0, months split in UTC), then priced."""
    runs = RUNS.empty_frame()
    rows = [
        ("2026-11-01T00:00Z", "metrics", '{"cloudwatch:GetMetricData": 2}', 1000, None),
        ("2026-11-02T00:00Z", "cost", '{"ce:GetCostAndUsage": 27}', 0, None),
        ("2026-11-30T23:59Z", "xray", "{}", 0, 2_000_000),
        ("2026-11-15T00:00Z", "cost", "not json", 0, None),
        ("2026-11-15T00:00Z", "cost", '["ce:GetCostAndUsage"]', 0, None),
        ("2026-11-15T00:00Z", "cost", None, 0, None),
        ("2026-12-01T00:00Z", "cost", '{"ce:GetCostAndUsage": 5}', 0, None),  # next month
    ]
    runs = pd.DataFrame([{
        "run_id": f"r{i}", "collector": collector, "account_id": "1" * 12,
        "region": "us-east-1", "started_at": pd.Timestamp(at), "duration_s": 1.0,
        "status": "ok", "error": None, "api_calls": 1, "api_calls_by_operation": ops,
        "metrics_requested": metrics, "traces_retrieved": traces, "rows": 0, "shard": None}
        for i, (at, collector, ops, metrics, traces) in enumerate(rows)], columns=runs.columns)
    store = Store(str(tmp_path / "data"), all_datasets())
    store.write(RUNS.name, runs.iloc[:3], "runs-a")
    store_io.read_api_usage(store, "2026-11", "2026-12")  # the first files, kept
    store.write(RUNS.name, runs.iloc[3:], "runs-b")  # a later cycle: summed on top
    usage = store_io.read_api_usage(store, "2026-11", "2026-12")
    assert store_io.read_api_usage(store, "2026-12", "2026-12")["month"].tolist() == ["2026-12"]
    for day, files in store.partitions(RUNS.name):
        if files > 1:
            store.compact(RUNS.name, day)  # the same rows in other files: the same sums
    pd.testing.assert_frame_equal(store_io.read_api_usage(store, "2026-11", "2026-12"), usage)
    assert usage["month"].tolist() == ["2026-11", "2026-12"]
    spend = categories.api_spend(usage)
    november = spend[spend["month"] == "2026-11"].set_index("api")["amount"]
    assert november["CloudWatch GetMetricData (metrics)"] == pytest.approx(0.01)
    assert november["Cost Explorer GetCostAndUsage"] == pytest.approx(0.27)
    assert november["X-Ray BatchGetTraces (traces)"] == pytest.approx(1.0)
    december = spend[spend["month"] == "2026-12"].set_index("api")["requests"]
    assert december["Cost Explorer GetCostAndUsage"] == 5


def test_movers_compare_the_same_days_and_name_the_line() -> None:
    rows = [(date(2026, 10, d), "orders", "EC2 - Other", "NatGateway-Bytes", 10.0)
            for d in range(1, 32)]
    rows += [(date(2026, 11, d), "orders", "EC2 - Other", "NatGateway-Bytes",
              30.0 if d == 3 else 10.0) for d in range(1, 6)]
    frame = _attributed(rows)
    (mover,) = review.movers(frame, "2026-11", date(2026, 11, 5)).to_dict("records")
    assert mover["previous"] == 50.0 and mover["amount"] == 70.0  # Oct 1-5 vs Nov 1-5
    assert mover["usage_type"] == "NatGateway-Bytes"


def test_close_then_restate_shows_the_diff() -> None:
    rows = [(date(2026, 10, d), "orders", "RDS", "InstanceUsage", 10.0) for d in range(1, 32)]
    frame = _attributed(rows)
    closed = review.snapshot(frame, "2026-10", datetime(2026, 11, 6, tzinfo=UTC))
    assert closed["amount"].sum() == 310.0
    assert review.closed_diff(closed, frame, "2026-10").empty
    restated = frame.copy()
    restated.loc[restated["date"] == date(2026, 10, 7), "amount"] = 12.5
    (diff,) = review.closed_diff(closed, restated, "2026-10").to_dict("records")
    assert (diff["usage_type"], diff["closed"], diff["now"]) == ("InstanceUsage", 310.0, 312.5)


def test_workbook_opens_with_its_sheets() -> None:
    data = review.workbook({"summary": pd.DataFrame({"a": [1]}),
                            "a very long sheet name over 31 chars": pd.DataFrame({"b": [2]})})
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["summary", "a very long sheet name over 31 "]


def test_workbook_keeps_formula_text_as_text_and_numbers_as_numbers() -> None:
    """A team or usage type from a monitored account's tags written as a formula must not run
    in the finance team's spreadsheet (OWASP CSV injection)."""
    frame = pd.DataFrame({"team": ['=HYPERLINK("http://evil.example","x")', "@SUM(1)", "ok"],
                          "amount": [-1.5, 2.0, 3.0]})
    sheet = openpyxl.load_workbook(io.BytesIO(review.workbook({"by team": frame})))["by team"]
    cells = [(cell.value, cell.data_type) for cell in sheet["A"][1:]]
    assert cells == [("'=HYPERLINK(\"http://evil.example\",\"x\")", "s"), ("'@SUM(1)", "s"),
                     ("ok", "s")]
    assert [cell.value for cell in sheet["B"][1:]] == [-1.5, 2, 3]


def test_workbook_writes_control_characters_and_invalid_utf8() -> None:
    """openpyxl refuses C0 controls and UTF-8 refuses surrogates: one bad name must not stop
    the month's workbook."""
    frame = pd.DataFrame({"team": ["nul\x00byte", "\x1b[31mred", INVALID_UTF8, "ok"]},
                         dtype=object)  # pandas' Arrow strings cannot hold a surrogate
    sheet = openpyxl.load_workbook(io.BytesIO(review.workbook({"t": frame})))["t"]
    assert [cell.value for cell in sheet["A"][1:]] == [
        "nul\ufffdbyte", "\ufffd[31mred", "bad-\ufffd-\ufffd\ufffd-name", "ok"]
