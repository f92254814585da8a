"""The cost collector against the simulated organization's Cost Explorer, end to end.

The simulator binds the cost model's answers in moto; orgscope reads them through the read
role in the management account with real boto3 calls. Six months of history (not thirteen)
keep the first run short; the team move (dated four months before today in the test's config)
and the spike (twelve days ago) fall inside it, whatever day the tests run on.

The rule compared to the cent: per month and raw Team tag value (``team_tag``, "" for
untagged cost), the stored latest amounts add up to the model's. Attributing untagged cost to
the account's team is the attribution's job, not the collector's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from collectors.cost import history_start, open_from
from sim.costs import TeamMove, default_spikes
from tests.simulated import Org, clear_of_midnight, recent_team_move, simulated_org

pytestmark = pytest.mark.integration

MONTHS = 6
CENT = 0.005


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    clear_of_midnight()
    replace = {"history_months = 13": f"history_months = {MONTHS}", **recent_team_move()}
    with simulated_org(tmp_path_factory.mktemp("cost"), replace) as running:
        assert running.cli("collect", "--once", "--only", "cost") == 0
        yield running


def _cost_runs(org: Org) -> list[dict[str, object]]:
    return org.query("select status, error, api_calls, api_calls_by_operation, rows, "
                     "duration_s from runs where collector = 'cost' order by started_at")


def _today(org: Org) -> date:
    return org.sim.cost_model.today


def test_first_run_reads_the_history_one_counted_request_per_page(org: Org) -> None:
    first = _cost_runs(org)[0]
    assert first["status"] == "ok", first["error"]
    start = history_start(_today(org), MONTHS)
    pages = org.sim.cost_pages[start]
    assert first["api_calls"] == pages > 1 + 26  # some answers took more than one page
    assert json.loads(str(first["api_calls_by_operation"])) == {"ce:GetCostAndUsage": pages}
    (span,) = org.query("select min(date) as first, max(date) as last from cost_daily")
    assert span["first"].date() == start and span["last"].date() == _today(org)  # type: ignore[attr-defined]


def test_per_team_monthly_totals_equal_the_models_to_the_cent(org: Org) -> None:
    model = org.sim.cost_model
    truth = model.totals(("month", "team_tag"), start=history_start(model.today, MONTHS))
    rows = org.query("select strftime(date, '%Y-%m') as month, team_tag, sum(amount) as amount "
                     "from cost_daily group by all")
    stored: dict[tuple[object, ...], object] = {
        (r["month"], r["team_tag"]): r["amount"] for r in rows}
    assert set(stored) == set(truth)
    for key, amount in truth.items():
        assert abs(float(stored[key]) - float(amount)) < CENT, key  # type: ignore[arg-type]


def test_untagged_cost_is_its_own_line(org: Org) -> None:
    rows = org.query("select account_id, sum(amount) as amount from cost_daily "
                     "where team_tag = '' group by all")
    assert len(rows) == 13 and all(float(r["amount"]) > 0 for r in rows)  # type: ignore[arg-type]
    (ps,) = org.query("select count(*) as n, count(*) filter (where team_tag = '') as untagged "
                      "from cost_daily where usage_type = 'USE1-PS-APIInteractions'")
    assert ps["n"] == ps["untagged"] and int(str(ps["n"])) > 0


def _move(org: Org) -> TeamMove:
    move = org.sim.cost_model.move
    assert move is not None and move.on > history_start(_today(org), MONTHS)
    return move


def test_the_team_move_keeps_past_days_with_the_old_tag(org: Org) -> None:
    move = _move(org)
    rows = org.query(
        "select min(date) as first, max(date) as last, team_tag from cost_daily "
        f"where account_id = '{move.account_id}' and team_tag <> '' group by team_tag")
    spans = {r["team_tag"]: (r["first"].date(), r["last"].date()) for r in rows}  # type: ignore[attr-defined]
    assert spans["driver"][1] == move.on - timedelta(days=1)
    assert spans["delivery"][0] == move.on


def test_the_spike_days_are_there_with_their_service_and_usage_type(org: Org) -> None:
    (spike,) = default_spikes(_today(org))
    rows = org.query(
        "select date, sum(amount) as amount from cost_daily "
        f"where account_id = '{spike.account_id}' and service = '{spike.service}' "
        f"and usage_type = '{spike.usage_type}' group by date")
    daily = {r["date"].date(): float(r["amount"]) for r in rows}  # type: ignore[attr-defined, arg-type]
    spiked = [spike.start + timedelta(days=i) for i in range(spike.days)]
    usual = sorted(v for d, v in daily.items() if d not in spiked)[len(daily) // 2]
    assert all(daily[d] > 4 * usual for d in spiked)


def test_estimated_days_are_marked(org: Org) -> None:
    rows = org.query("select distinct date from cost_daily where estimated order by date")
    today = _today(org)
    assert [r["date"].date() for r in rows] == [today - timedelta(days=i) for i in (2, 1, 0)]  # type: ignore[attr-defined]


def test_a_second_run_rereads_only_open_days_and_stores_nothing_unchanged(org: Org) -> None:
    assert org.cli("collect", "--once", "--only", "cost") == 0
    second = _cost_runs(org)[-1]
    assert second["status"] == "ok", second["error"]
    window_start = open_from(_today(org), 5)
    first_calls = int(str(_cost_runs(org)[0]["api_calls"]))
    assert second["api_calls"] == org.sim.cost_pages[window_start] < first_calls
    assert second["rows"] == 0
    (watermark,) = org.query("select watermark from watermarks where collector = 'cost'")
    assert watermark["watermark"] == datetime(window_start.year, window_start.month,
                                              window_start.day, tzinfo=UTC)


def test_a_restatement_by_aws_is_a_new_version_of_that_day(org: Org) -> None:
    day = _today(org) - timedelta(days=4)
    org.sim.restate_cost(day, "888888888888", "Amazon Relational Database Service",
                         "InstanceUsage:db.r5.large", 1.25)
    assert org.cli("collect", "--once", "--only", "cost") == 0
    versions = org.query("select date, count(distinct collected_at) as n, "
                         "max(collected_at) as latest from cost_daily_history "
                         "group by date having n > 1")
    assert [v["date"].date() for v in versions] == [day]  # type: ignore[attr-defined]
    (latest,) = org.query(
        f"select sum(amount) as amount from cost_daily where date = '{day.isoformat()}'")
    truth = org.sim.cost_model.totals(("day",))[(day,)]
    assert abs(float(latest["amount"]) - float(truth)) < CENT  # type: ignore[arg-type]
    assert truth > Decimal(0)
