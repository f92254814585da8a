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


#: The list prices the simulator bills per unit (sim/costs.py LIST_PRICES), $ per million.
EVENT_PRICE, SQS_PRICE = 1.00, 0.40


def test_usage_priced_flows_cost_what_aws_lists(org: Org) -> None:
    """Each flow pays its events at the bill's unit price, the rest of the billions of events
    the simulated bill pays for stays unallocated: a flow whose every line is priced by usage
    costs $1 a million for each EventBridge hop (its producers' events; a forward's send to
    the next bus) plus $0.40 for an SQS delivery, not the thousands a share of the whole line
    would make it."""
    config = wiring.load(org.config_path)
    rows = wiring.open_store(config).query("SELECT * FROM flow_cost_daily")
    usage = {flows.METHOD_EVENTBRIDGE_USAGE, flows.METHOD_TARGET_USAGE}
    carried = rows[rows["rule"] != ""]
    assert usage <= set(carried["method"])
    assert (rows["method"] == flows.METHOD_UNUSED).any()
    keys = [*flows.FLOW_KEY, "date"]
    priced = carried.groupby(keys)["method"].transform(lambda m: set(m) <= usage)
    chosen = carried[priced.astype(bool)]
    totals = flows.flow_totals(chosen)
    # each row is rounded to a millionth of a dollar: over a flow's few simulated events
    # that is worth 1 / events dollars a million per row
    rounding = chosen.groupby(flows.FLOW_KEY).size().rename("rows").reset_index()
    totals = totals.merge(rounding, on=flows.FLOW_KEY)
    totals = totals[totals["events"] > 0]
    slack = totals["rows"] / totals["events"]
    assert len(totals) > 0
    kind = totals["target_kind"]
    assert {"sqs", "bus"} <= set(kind)
    low = kind.map({"sqs": SQS_PRICE, "bus": EVENT_PRICE}).fillna(0.0) - slack
    # an SQS flow: its delivery, plus at most one EventBridge hop when producers publish to
    # its rule's bus directly; a forward to another bus: its producers' events and its own
    # send, one dollar each
    high = kind.map({"sqs": SQS_PRICE + EVENT_PRICE, "bus": 2 * EVENT_PRICE}).fillna(
        2 * EVENT_PRICE + SQS_PRICE) + slack
    per_million = totals["per_million"]
    assert ((per_million >= low) & (per_million <= high)).all(), \
        totals[["rule", "target_kind", "events", "per_million"]].to_string()
