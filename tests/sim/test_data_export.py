"""The simulator's FOCUS export without a server: what it writes equals what its Cost
Explorer answers, to the cent, and resource lines split amounts exactly."""

from __future__ import annotations

import io
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collectors.cost import CostCollectorConfig
from collectors.cost_export import export_rows
from orgscope.plugins import load_config
from sim.costexplorer import window_pages
from sim.costs import EVENTBRIDGE, CostModel
from sim.data_export import (
    SQS,
    focus_table,
    parquet_bytes,
    resource_lines,
    split_micros,
    topology_resources,
)
from tests.conftest import REFERENCE_CONFIG

TODAY = date(2024, 3, 1)  # the window crosses a leap day and a year end
EVENT_BUS = "121212121212"  # config.toml's event-bus account
STOREFRONT = "111111111111"  # customer-web


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel.reference(load_config(REFERENCE_CONFIG).accounts, TODAY)


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], list[str]]:
    rules = [(EVENT_BUS, "central-bus", "orders-to-fulfilment"),
             (EVENT_BUS, "central-bus", "payments-to-ledger"), (EVENT_BUS, "default", "audit")]
    return topology_resources(rules, [f"arn:aws:sqs:us-east-1:{STOREFRONT}:orders-dlq"],
                              "us-east-1")


def test_topology_resources_are_rules_buses_and_queues(
        resources: dict[tuple[str, str], list[str]]) -> None:
    prefix = f"arn:aws:events:us-east-1:{EVENT_BUS}"
    assert resources[(EVENT_BUS, EVENTBRIDGE)] == [
        f"{prefix}:event-bus/central-bus", f"{prefix}:event-bus/default",
        f"{prefix}:rule/audit", f"{prefix}:rule/central-bus/orders-to-fulfilment",
        f"{prefix}:rule/central-bus/payments-to-ledger"]
    assert resources[(STOREFRONT, SQS)] == [f"arn:aws:sqs:us-east-1:{STOREFRONT}:orders-dlq"]


def test_split_micros_adds_up_exactly() -> None:
    micros = np.array([0, 1, 7, 1_000_003, -5], dtype=np.int64)
    shares = split_micros(micros, 3)
    assert shares.shape == (5, 3)
    assert list(shares.sum(axis=1)) == list(micros)
    assert (shares.max(axis=1) - shares.min(axis=1) <= 1).all()


def test_the_export_read_back_equals_the_simulated_cost_explorer_to_the_cent(
        model: CostModel, resources: dict[tuple[str, str], list[str]]) -> None:
    lines = resource_lines(model, resources)
    files = [parquet_bytes(focus_table(period, "Team"))
             for _, period in lines.groupby("month", sort=True)]
    assert len(files) == 13
    table = pa.concat_tables(pq.read_table(io.BytesIO(f)) for f in files)
    read = export_rows(table, "focus-1.0", "Team", model.start, TODAY + timedelta(days=1))
    daily = read.groupby(["date", "account_id", "team_tag", "service", "usage_type"]
                         )["amount"].sum()
    # what Cost Explorer answers: the detail pages the simulator binds for the first run
    answered = {}
    for params, response in window_pages(model, CostCollectorConfig(), model.start):
        if params["GroupBy"][0]["Key"] != "SERVICE":
            continue
        account = params["Filter"]["And"][0]["Dimensions"]["Values"][0]
        tag = params["Filter"]["And"][1]["Tags"].get("Values", [""])[0]
        for period in response["ResultsByTime"]:
            day = date.fromisoformat(period["TimePeriod"]["Start"])
            for group in period["Groups"]:
                key = (day, account, tag, *group["Keys"])
                answered[key] = float(group["Metrics"]["UnblendedCost"]["Amount"])
    assert set(daily.index) == set(answered)
    assert max(abs(daily[k] - v) for k, v in answered.items()) < 0.005
    assert date(2024, 2, 29) in set(read["date"]) and date(2023, 12, 31) in set(read["date"])


def test_eventbridge_and_queue_lines_carry_resources_others_none(
        model: CostModel, resources: dict[tuple[str, str], list[str]]) -> None:
    lines = resource_lines(model, resources)
    named = lines[lines["resource_id"] != ""]
    assert set(zip(named["account_id"], named["service"], strict=True)) == {
        (EVENT_BUS, EVENTBRIDGE), (STOREFRONT, SQS)}
    assert set(named["resource_id"]) == {a for arns in resources.values() for a in arns}
    plain = lines[lines["resource_id"] == ""]
    assert not set(zip(plain["account_id"], plain["service"], strict=True)) & set(resources)

