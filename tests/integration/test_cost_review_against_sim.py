"""The cost review against the simulated organization: collected through Cost Explorer's API,
attributed by config.toml's rules, compared with the cost model's exact truth.

Five months of history (the current month and the four before it) hold the team move (the
15th, four months ago: the test's config dates it so whatever day the tests run on) and the spike
(twelve days ago, which may fall in the previous month or across a month's end).
``bill_final_day = 28`` keeps the previous month open, so a restatement by AWS in a closed month
is read back.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest

from collectors.cost import open_from
from dashboard import cost_data
from orgscope import wiring
from orgscope.cost.review import month_before
from sim.costs import default_spikes, month_start
from tests.simulated import Org, clear_of_midnight, recent_team_move, simulated_org

pytestmark = pytest.mark.integration

MONTHS = 5
CENT = 0.005


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    clear_of_midnight()
    replace = {"history_months = 13": f"history_months = {MONTHS}",
               "bill_final_day = 5": "bill_final_day = 28", **recent_team_move()}
    with simulated_org(tmp_path_factory.mktemp("cost_review"), replace) as running:
        assert running.cli("collect", "--once", "--only", "cost") == 0
        yield running


def _review(org: Org, month: str) -> cost_data.CostReview:
    config = wiring.load(org.config_path)
    return cost_data.build_review(wiring.open_store(config), config, month,
                                  org.sim.cost_model.today)


def _truth(org: Org) -> dict[tuple[str, str], Decimal]:
    """(month, team) -> exact cost under the documented rule: tag, else the account's team
    that day; shared accounts all to platform (config.toml's shared_allocation)."""
    config = wiring.load(org.config_path)
    model = org.sim.cost_model
    accounts = {a.id: a for a in config.accounts}
    first = month_start(model.today, -(MONTHS - 1))
    frame = model.frame[model.frame["day"] >= first]
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for month, day, account_id, tag, micros in frame[
            ["month", "day", "account_id", "team_tag", "micros"]].itertuples(index=False):
        account = accounts[account_id]
        team = config.cost.platform_team if account.shared else tag or account.team_on(day)
        totals[(month, team)] += int(micros)
    return {key: Decimal(micros).scaleb(-6) for key, micros in totals.items()}


def test_per_team_monthly_totals_equal_the_models_to_the_cent(org: Org) -> None:
    truth = _truth(org)
    months = sorted({month for month, _ in truth})
    for month in months[-3:]:
        teams = _review(org, month).teams.set_index("team")["amount"]
        expected = {team: amount for (m, team), amount in truth.items() if m == month}
        assert set(teams.index) == set(expected)
        for team, amount in expected.items():
            assert abs(float(teams[team]) - float(amount)) < CENT, (month, team)


def test_untagged_cost_appears(org: Org) -> None:
    rv = _review(org, month_before(org.sim.cost_model.today.strftime("%Y-%m")))
    assert rv.untagged > 0 and len(rv.untagged_lines) > 0
    assert abs(float(rv.teams["untagged"].sum()) - rv.untagged) < 1.0 + float(
        rv.untagged_lines[rv.untagged_lines["team"] == "platform"]["amount"].sum())


def test_the_team_move_keeps_past_months_with_the_old_team(org: Org) -> None:
    move = org.sim.cost_model.move
    assert move is not None and move.on.day == 15
    moved_in = move.on.strftime("%Y-%m")
    after = month_start(move.on, 1).strftime("%Y-%m")
    first = _review(org, moved_in).teams.set_index("team")
    second = _review(org, after).teams.set_index("team")
    assert first.loc["driver", "amount"] > 0  # the 1st to the 14th stays with driver
    # from the 15th all of driver-app is delivery's: driver shows only as last month's cost
    assert second.loc["driver", "amount"] == 0 and second.loc["driver", "previous"] > 0
    driver_app = _review(org, after).accounts.set_index("account")
    assert driver_app.loc["driver-app", "amount"] > 0


def test_the_spike_is_flagged_with_its_service_and_usage_type(org: Org) -> None:
    today = org.sim.cost_model.today
    (spike,) = default_spikes(today)
    spiked = {spike.start + timedelta(days=i) for i in range(spike.days)}
    # the spike's days may lie in the previous month or across a month's end: each month's
    # review flags the days it holds
    months = sorted({day.strftime("%Y-%m") for day in spiked})
    hits = pd.concat([_review(org, month).anomalies for month in months], ignore_index=True)
    named = hits[[d in spiked for d in hits["date"]]]
    assert len(named) >= 2
    assert set(zip(named["team"], named["service"], named["usage_type"],
                   named["account_id"], strict=True)) == {
        ("orders", spike.service, spike.usage_type, spike.account_id)}
    rv = _review(org, today.strftime("%Y-%m"))
    assert len(rv.forecast) and (rv.forecast["low"] <= rv.forecast["high"]).all()


def test_the_xlsx_sheets_sum_to_the_pages_totals(org: Org) -> None:
    rv = _review(org, month_before(org.sim.cost_model.today.strftime("%Y-%m")))
    book = openpyxl.load_workbook(io.BytesIO(
        cost_data.review.workbook(cost_data.export_sheets(rv))))
    assert book.sheetnames == ["summary", "by team", "by account", "by service", "untagged",
                               "flow unit cost", "flow end to end", "method notes"]

    def column_sum(sheet: str, header: str) -> float:
        rows = list(book[sheet].iter_rows(values_only=True))
        index = list(rows[0]).index(header)
        return sum(float(r[index] or 0) for r in rows[1:])

    summary = {r[0]: r[1] for r in book["summary"].iter_rows(values_only=True)}
    assert summary["Total"] == round(rv.total, 2)
    for sheet in ("by team", "by account", "by service"):
        rows = book[sheet].max_row - 1
        assert abs(column_sum(sheet, "amount") - rv.total) <= rows * CENT, sheet
    assert abs(column_sum("untagged", "amount") - rv.untagged) <= \
        (book["untagged"].max_row - 1) * CENT


def test_a_restated_day_shows_in_the_closed_months_diff(org: Org) -> None:
    today = org.sim.cost_model.today
    month = month_before(today.strftime("%Y-%m"))
    assert org.cli("cost", "close", month) == 0
    assert _review(org, month).closed_diff.empty
    day = datetime.strptime(f"{month}-07", "%Y-%m-%d").replace(tzinfo=UTC).date()
    org.sim.restate_cost(day, "888888888888", "Amazon Relational Database Service",
                         "InstanceUsage:db.r5.large", 1.25)
    assert org.cli("collect", "--once", "--only", "cost") == 0
    rv = _review(org, month)
    assert rv.closed_at is not None
    if open_from(today, 28) > day:
        # after the 28th (bill_final_day here) last month's bill is final: the collector no
        # longer re-reads it, so AWS's late change is not seen and the closed month stands
        assert rv.closed_diff.empty
        assert org.cli("cost", "close", today.strftime("%Y-%m")) == 2  # not over yet
        return
    diff = rv.closed_diff  # the tagged and the untagged part of the restated line
    assert set(zip(diff["account_id"], diff["usage_type"], strict=True)) == {
        ("888888888888", "InstanceUsage:db.r5.large")}
    line = org.sim.cost_model.totals(("day", "account_id", "usage_type"), day,
                                     day + timedelta(days=1))
    restated = float(line[(day, "888888888888", "InstanceUsage:db.r5.large")])
    assert abs(float(diff["diff"].sum()) - restated * 0.25 / 1.25) < CENT
    assert org.cli("cost", "close", today.strftime("%Y-%m")) == 2  # not over yet
