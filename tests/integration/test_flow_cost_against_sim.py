"""Unit cost per event flow against the simulated organization: the collectors read the
inventory, an hour of rule metrics and two months of cost through the AWS APIs, and the
flow_cost step that follows splits the EventBridge, SQS and Lambda lines over the flows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dashboard.flow_cost_data import build_flow_cost
from orgscope import wiring
from orgscope.cost import flows
from orgscope.cost.flow_update import window
from tests.simulated import Org, clear_of_midnight, simulated_org

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    clear_of_midnight()
    with simulated_org(tmp_path_factory.mktemp("flow_cost"),
                       {"history_months = 13": "history_months = 2"}) as running:
        for collector in ("inventory", "metrics", "cost"):
            assert running.cli("collect", "--once", "--only", collector) == 0
        yield running


def test_the_demos_flows_carry_cost_and_every_line_adds_up(org: Org) -> None:
    start, end = window(datetime.now(UTC).date())
    store = wiring.open_store(wiring.load(org.config_path))
    rows = store.query("SELECT * FROM flow_cost_daily")
    assert len(rows), "the flow_cost step wrote nothing"
    carried = rows[rows["rule"] != ""]
    assert set(carried["component"]) >= {flows.COMPONENT_EVENTBRIDGE, flows.COMPONENT_TARGET}
    assert carried["amount"].sum() > 0
    source = store.query(
        "SELECT date, account_id AS cost_account_id, service, usage_type, sum(amount) AS amount "
        "FROM cost_daily WHERE date >= ? AND date < ? GROUP BY ALL", [start, end]
    ).set_index(["date", "cost_account_id", "service", "usage_type"])["amount"]
    split = rows[rows["cost_account_id"] != ""].groupby(
        ["date", "cost_account_id", "service", "usage_type"])["amount"].sum()
    assert len(split) > 0
    for key, amount in split.items():
        assert round(amount * 100) == round(float(source[key]) * 100), key


def test_the_cost_page_has_unit_costs_for_today(org: Org) -> None:
    config = wiring.load(org.config_path)
    today = datetime.now(UTC).date()
    view = build_flow_cost(wiring.open_store(config), config, f"{today:%Y-%m}", today)
    assert len(view.flows) > 0
    assert (view.flows["per_million"] > 0).any()
