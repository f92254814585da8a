"""The Collectors page's data layer on a tmp store: run history buckets and filter scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard import collectors_data as cd
from dashboard.filters import Filters
from orgscope import bill
from orgscope.datasets import RUNS, all_datasets
from orgscope.plugins import parse_config
from orgscope.store import Store
from testkit.collectors_sample import MANAGEMENT, runs_frame
from tests.conftest import reference_data

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
A, B = "111111111111", "999999999999"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(str(tmp_path_factory.mktemp("collectors") / "store"), all_datasets())
    frame = runs_frame({A: (4, 2, 10), B: (2, 1, 0)}, NOW - timedelta(hours=10), NOW,
                       unreachable={B: NOW - timedelta(minutes=12)})
    store.write(RUNS.name, frame, "runs")
    return store


def test_history_sums_every_run_per_bucket_and_prices_it(store: Store) -> None:
    since, until = NOW - timedelta(hours=10), NOW
    history = cd.run_history(store, since, until, None, (), max_points=300)
    # 10 hours in at most 300 buckets: 5-minute buckets
    assert history["bucket"].nunique() == 120
    metrics = history[history["collector"] == "metrics"]
    # A: 48 series, B: 24, every 5 minutes (120 runs each); the first run of each back-fills
    # 48 chunks; B is unreachable (0 metrics) from 11:48, so in its last 2 runs
    assert int(metrics["metrics_requested"].sum()) == (48 * 48 + 48 * 119) + (24 * 48 + 24 * 117)
    # zero-filled: every collector in every bucket
    assert len(history) == 120 * 5
    cost = history[history["collector"] == "cost"]
    assert (cost["runs"] > 0).sum() == 2
    # cost runs at 02:00 (a 13-month back-fill: 15 x 27 requests) and 10:00 (27 requests)
    assert cost["runs"].sum() == 2 and cost["ce_requests"].sum() == 15 * 27 + 27
    assert cost["dollars"].sum() == pytest.approx(cost["ce_requests"].sum() * 0.01)
    xray = history[history["collector"] == "xray"]
    assert xray["dollars"].sum() == pytest.approx(xray["traces_retrieved"].sum() * 2 * 5e-7)
    assert int(history["failed"].sum()) == 2 * 3 + 12  # B: 2 cycles x 3, 12 xray minutes
    coarse = cd.run_history(store, since, until, None, (), max_points=10)
    assert coarse["bucket"].nunique() <= 10
    assert coarse["api_calls"].sum() == history["api_calls"].sum()


def test_history_follows_the_account_and_region_filters(store: Store) -> None:
    since, until = NOW - timedelta(hours=10), NOW
    only_a = cd.run_history(store, since, until, (A,), (), max_points=300)
    assert set(only_a["collector"]) == {"inventory", "metrics", "dlq", "xray"}
    other_region = cd.run_history(store, since, until, None, ("eu-west-1",), max_points=300)
    assert other_region.empty


def test_scope_of_the_sidebar_filters() -> None:
    choices = pd.DataFrame({"account_id": [A, B, MANAGEMENT],
                            "team": ["customer-web", "payments", "platform"],
                            "name": ["customer-web", "payment-service", "org-management"]})
    assert cd.scoped_accounts(choices, Filters()) is None
    assert cd.scoped_accounts(choices, Filters(teams=("payments",))) == (B,)
    assert cd.scoped_accounts(choices, Filters(account_ids=(A, "222222222222"))) == \
        (A, "222222222222")
    usage = pd.DataFrame({"account_id": [A, B], "region": ["us-east-1", "eu-west-1"]})
    assert cd.in_scope(usage, (A,), ()).index.tolist() == [0]
    assert cd.in_scope(usage, None, ("eu-west-1",)).index.tolist() == [1]


def test_the_bill_of_the_sample_store(store: Store) -> None:
    usage = bill.read_usage(store, NOW)
    billed = bill.bill(usage, parse_config(reference_data())).set_index(
        ["collector", "account_id"])
    # A's metrics: 48 series a run (back-fill left out), 8,640 runs -> 414,720 metrics, $4.1472
    assert billed.loc[("metrics", A), "monthly_usd"] == pytest.approx(4.1472)
    assert billed.loc[("metrics", B), "status"] == "unreachable"
    # cost: 27 requests x 90 runs = $24.30 (its one back-fill run is the first, left out)
    assert billed.loc[("cost", MANAGEMENT), "monthly_usd"] == pytest.approx(24.30)
