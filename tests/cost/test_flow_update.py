"""The flow-cost step on a store (orgscope/cost/flow_update.py): what it writes adds up to
cost_daily to the cent, and the pages' tables read it (dashboard/flow_cost_data.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard.cost_data import flow_sheet
from dashboard.flow_cost_data import build_flow_cost, rule_unit_cost
from orgscope.cost import flows
from orgscope.cost.attribution import month_of
from orgscope.cost.flow_update import RECOMPUTE_EVERY, known_accounts, update_flow_cost, window
from orgscope.datasets import all_datasets
from orgscope.plugins import load_config
from orgscope.store import Store
from testkit.cost_sample import fill_cost
from testkit.dashboard_sample import CENTRAL, fill_org_store, write_config
from testkit.flow_cost_sample import FALLEN_ACCOUNT, daily_metrics, fill_flow_cost
from testkit.synthetic import runs


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, datetime, object]:
    tmp = tmp_path_factory.mktemp("flowcost")
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(str(tmp / "data"), all_datasets())
    config = load_config(write_config(Path(tmp), tmp / "data"))
    summary = fill_flow_cost(store, config, now)
    assert summary.startswith("flow cost: ")
    return store, now, config


def test_every_flow_line_adds_up_to_cost_daily_to_the_cent(
        filled: tuple[Store, datetime, object]) -> None:
    store, now, _config = filled
    start, end = window(now.date())
    written = store.query("SELECT * FROM flow_cost_daily")
    cost = store.query("SELECT date, account_id, service, usage_type, sum(amount) AS amount "
                       "FROM cost_daily WHERE date >= ? AND date < ? GROUP BY ALL",
                       [start, end])
    lines = written[written["cost_account_id"] != ""].groupby(
        ["date", "cost_account_id", "service", "usage_type"])["amount"].sum()
    source = cost.set_index(["date", "account_id", "service", "usage_type"])["amount"]
    assert len(lines) > 0
    for key, amount in lines.items():
        assert round(amount * 100) == round(float(source[key]) * 100), key
    # every EventBridge line of the window is there, carried or stated unallocated
    eventbridge = source[[s in flows.EVENTBRIDGE_SERVICES for s in
                          source.index.get_level_values("service")]]
    assert set(eventbridge.index) <= set(lines.index)
    assert (written["rule"] != "").any()
    assert set(written.loc[written["rule"] == "", "team"]) <= {flows.UNALLOCATED}


def test_the_months_flows_risers_and_xlsx_sheet(
        filled: tuple[Store, datetime, object]) -> None:
    store, now, config = filled
    month = month_of(now.date())
    view = build_flow_cost(store, config, month, now.date())  # type: ignore[arg-type]
    assert len(view.flows) > 0
    assert view.flows["per_million"].notna().all()
    assert (view.teams["per_million"] > 0).any()
    fallen = view.risers[view.risers["flow"].str.contains("order-processing sqs")]
    assert len(fallen) > 0
    assert fallen["reason"].str.startswith("volume fell").all()
    ends = view.routes.set_index("flow")
    queue = ends.loc[next(f for f in ends.index if "orders-from-central" in f)]
    assert "order-placed-to-orders" in queue["hops"]
    assert queue["end_to_end"] == pytest.approx(queue["per_million"]
                                                + queue["upstream_per_million"])
    assert queue["upstream_per_million"] > 0
    assert view.teams["end_to_end"].notna().any()
    sheet = flow_sheet(view)
    assert len(sheet) == len(view.flows) + len(view.unallocated)
    assert sheet["amount"].sum() == pytest.approx(
        view.allocated + view.unallocated["amount"].sum(), abs=0.01 * len(sheet))


def test_a_rules_unit_cost_for_the_event_flow_page(
        filled: tuple[Store, datetime, object]) -> None:
    store, now, _config = filled
    key = (CENTRAL, "us-east-1", "central-bus", "order-placed-to-orders")
    own = rule_unit_cost(store, key, now.date())
    assert list(own["target_kind"]) == ["bus"]
    assert float(own["per_million"].iloc[0]) > 0
    none = rule_unit_cost(store, (FALLEN_ACCOUNT, "us-east-1", "default", "no-such-rule"),
                          now.date())
    assert none.empty


def test_the_step_recomputes_when_cost_is_new_or_an_hour_has_passed(
        tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(str(tmp_path / "data"), all_datasets())
    config = load_config(write_config(tmp_path, tmp_path / "data"))
    assert update_flow_cost(config, store, now) == \
        "flow cost: no cost lines of event flows in the window"
    fill_flow_cost(store, config, now)
    assert update_flow_cost(config, store, now + timedelta(minutes=5)) == \
        "flow cost: up to date"
    later = now + RECOMPUTE_EVERY
    assert update_flow_cost(config, store, later) != "flow cost: up to date"
    assert update_flow_cost(config, store, later + timedelta(minutes=1)) == \
        "flow cost: up to date"
    stamps = store.query("SELECT DISTINCT computed_at FROM flow_cost_daily_history")
    assert len(stamps) == 2


def test_accounts_only_organizations_knows_still_map_producers(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(str(tmp_path / "data"), all_datasets())
    config = load_config(write_config(tmp_path, tmp_path / "data"))
    discovered = {"account_id": "424242424242", "name": "new-team-account", "team": "new",
                  "environment": "production", "cost_center": "", "reachable": True,
                  "reason": None, "checked_at": now}
    store.write("accounts", pd.DataFrame([discovered]), "discovered")
    known = known_accounts(store, config).set_index("account_id")
    assert known.loc["424242424242", "name"] == "new-team-account"
    assert set(a.id for a in config.accounts) <= set(known.index)


def test_cost_collected_in_the_second_the_step_ran_is_new_cost(tmp_path: Path) -> None:
    """A cost cycle can start in the very second the step computed (both are stamped to
    the second): the next run recomputes rather than calling it up to date for an hour."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(str(tmp_path / "data"), all_datasets())
    config = load_config(write_config(tmp_path, tmp_path / "data"))
    fill_flow_cost(store, config, now)
    latest = store.query("SELECT * FROM cost_daily")
    store.write("cost_daily", latest.assign(collected_at=pd.Timestamp(now)), "same-second")
    assert update_flow_cost(config, store, now + timedelta(minutes=5)) != \
        "flow cost: up to date"


def test_the_first_rule_metrics_after_a_computation_without_events_recompute_at_once(
        tmp_path: Path) -> None:
    """Cost can land before the first metrics cycle (the demo's first minute, a new
    install): the flows then have no events, and the first successful metrics run makes the
    step recompute instead of waiting an hour."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(str(tmp_path / "data"), all_datasets())
    config = load_config(write_config(tmp_path, tmp_path / "data"))
    fill_org_store(store, now)
    fill_cost(store, config, now.date())
    first = update_flow_cost(config, store, now)
    assert first.startswith("flow cost: 0 flows"), first
    store.write("event_metrics", daily_metrics(now), "first-metrics")
    # metrics written, but no metrics run has succeeded since: nothing says so yet
    assert update_flow_cost(config, store, now + timedelta(minutes=1)) == \
        "flow cost: up to date"
    failed = runs([(CENTRAL, "us-east-1")], now + timedelta(minutes=2), status="error")
    store.write("runs", failed, "failed-metrics-run")
    assert update_flow_cost(config, store, now + timedelta(minutes=3)) == \
        "flow cost: up to date"
    store.write("runs", runs([(CENTRAL, "us-east-1")], now + timedelta(minutes=4)), "ok-run")
    second = update_flow_cost(config, store, now + timedelta(minutes=5))
    assert not second.startswith("flow cost: 0 flows") and second != "flow cost: up to date"
    # flows with events now: later metrics cycles wait for new cost or the hour again
    store.write("runs", runs([(CENTRAL, "us-east-1")], now + timedelta(minutes=9)), "ok-run-2")
    assert update_flow_cost(config, store, now + timedelta(minutes=10)) == \
        "flow cost: up to date"
