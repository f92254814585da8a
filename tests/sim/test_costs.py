"""The simulator's cost model and Cost Explorer pages, without a server."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import botocore.session
import pytest

from collectors.cost import CostCollectorConfig, detail_request, pairs_request
from orgscope.plugins import load_config
from sim.costexplorer import paginate, request_body, usd_text, window_pages, window_starts
from sim.costs import (
    OVERHEAD_USAGE,
    CostModel,
    Restatement,
    default_spikes,
    default_team_move,
    list_price,
)
from sim.scenario import ScenarioError, parse_events
from tests.conftest import REFERENCE_CONFIG

TODAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel.reference(load_config(REFERENCE_CONFIG).accounts, TODAY)


def test_thirteen_months_of_days_through_today(model: CostModel) -> None:
    days = model.days()
    assert days[0] == date(2025, 11, 1) and days[-1] == TODAY
    assert set(model.frame["day"]) == set(days)


def test_deterministic_and_seeded(model: CostModel) -> None:
    again = CostModel.reference(model.accounts, TODAY)
    assert again.total() == model.total()
    other = CostModel.reference(model.accounts, TODAY, seed=8)
    assert other.total() != model.total()
    # A day's amount does not depend on which day is today.
    later = CostModel.reference(model.accounts, TODAY + timedelta(days=3))
    month = (date(2026, 9, 1), date(2026, 10, 1))
    assert later.total(*month) == model.total(*month)


def test_monthly_total_and_overheads_near_the_articles(model: CostModel) -> None:
    october = model.totals(("month",), date(2026, 10, 1), date(2026, 11, 1))[("2026-10",)]
    assert Decimal(65_000) < october < Decimal(95_000)
    by_usage = model.totals(("service", "usage_type"), date(2026, 10, 1), date(2026, 11, 1))
    article = {"EventBridge events": 3450, "Cross-AZ data transfer": 2100,
               "NAT gateways": 3215, "CloudWatch Logs": 4500, "Secrets Manager": 1800,
               "Parameter Store API calls": 890}
    for category, pairs in OVERHEAD_USAGE.items():
        spent = sum((by_usage.get(pair, Decimal(0)) for pair in pairs), Decimal(0))
        # grown for 11 months at 1 %/month, plus noise (and the NAT spike)
        assert 0.95 * article[category] < float(spent) < 1.35 * article[category], category


def test_totals_add_up_exactly(model: CostModel) -> None:
    by_team = model.totals(("month", "team_tag"))
    by_account = model.totals(("account_id",))
    assert sum(by_team.values(), Decimal(0)) == model.total() == \
        sum(by_account.values(), Decimal(0))
    assert all(v == v.quantize(Decimal("0.000001")) for v in by_team.values())


def test_untagged_cost_in_every_account(model: CostModel) -> None:
    untagged = model.frame[model.frame["team_tag"] == ""]
    assert set(untagged["account_id"]) == {a.id for a in model.accounts}
    parameter_store = model.frame[model.frame["usage_type"] == "USE1-PS-APIInteractions"]
    assert set(parameter_store["team_tag"]) == {""}  # API calls carry no tag


def test_the_team_move_keeps_the_old_tag_before_its_day(model: CostModel) -> None:
    move = default_team_move(TODAY)
    assert move.on == date(2026, 7, 15)
    driver = model.frame[(model.frame["account_id"] == move.account_id)
                         & (model.frame["team_tag"] != "")]
    before = driver[driver["day"] < move.on]
    after = driver[driver["day"] >= move.on]
    assert set(before["team_tag"]) == {"driver"} and set(after["team_tag"]) == {"delivery"}
    july = model.totals(("month", "team_tag"), date(2026, 7, 1), date(2026, 8, 1))
    assert ("2026-07", "driver") in july and ("2026-07", "delivery") in july


def test_the_spike_days_cost_several_times_the_others(model: CostModel) -> None:
    (spike,) = default_spikes(TODAY)
    daily = model.totals(("day",), TODAY - timedelta(days=30), TODAY)
    line = model.frame[(model.frame["account_id"] == spike.account_id)
                       & (model.frame["usage_type"] == spike.usage_type)]
    per_day = line.groupby("day")["micros"].sum()
    spiked = [per_day[spike.start + timedelta(days=i)] for i in range(spike.days)]
    normal = per_day[spike.start - timedelta(days=7)]
    assert all(value > 4 * normal for value in spiked)
    assert len(daily) == 30


def test_the_last_three_days_are_estimated(model: CostModel) -> None:
    assert [model.estimated(TODAY - timedelta(days=i)) for i in range(5)] == \
        [True, True, True, False, False]


def test_a_restatement_changes_one_line_on_one_day(model: CostModel) -> None:
    day = TODAY - timedelta(days=10)
    restated = CostModel.reference(model.accounts, TODAY, restatements=[
        Restatement(day, "111111111111", "AWS Lambda", "Lambda-GB-Second", 1.5)])
    before = model.totals(("day",))
    after = restated.totals(("day",))
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [(day,)]
    assert after[(day,)] > before[(day,)]


# --- Cost Explorer pages ---------------------------------------------------------------------


def test_request_body_is_what_botocore_sends() -> None:
    params = detail_request(date(2026, 11, 1), date(2026, 11, 27), "Team", "777777777777", "")
    body = request_body({**params, "NextPageToken": "abc"})
    assert body == json.dumps({**params, "NextPageToken": "abc"})
    client: Any = botocore.session.get_session().create_client(
        "ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[bytes] = []

    def capture(request: object, **_: object) -> None:
        sent.append(getattr(request, "body"))  # noqa: B009
        raise RuntimeError("stop")

    client.meta.events.register("before-send.ce.GetCostAndUsage", capture)
    with pytest.raises(RuntimeError):
        client.get_cost_and_usage(**params)
    assert sent[0].decode() == request_body(params)


def test_usd_text() -> None:
    assert usd_text(1_234_567) == "1.234567"
    assert usd_text(5) == "0.000005"
    assert usd_text(-1_500_000) == "-1.500000"


def test_large_answers_are_chained_pages_of_whole_periods() -> None:
    request = pairs_request(date(2026, 11, 1), date(2026, 11, 11), "Team")
    periods = [{"TimePeriod": {"Start": f"2026-11-{i:02d}"}, "Groups": [{}] * 3}
               for i in range(1, 11)]
    pages = paginate(request, periods, page_groups=7)
    assert [len(p[1]["ResultsByTime"]) for p in pages] == [2, 2, 2, 2, 2]
    for (_, response), (following, _) in itertools.pairwise(pages):
        assert response["NextPageToken"] == following["NextPageToken"]
    assert "NextPageToken" not in pages[0][0] and "NextPageToken" not in pages[-1][1]


def test_window_pages_cover_the_model_exactly(model: CostModel) -> None:
    settings = CostCollectorConfig()
    starts = window_starts(TODAY, settings)
    # first run; a watermark set while October was open; and the usual one
    assert starts == [date(2025, 11, 1), date(2026, 10, 1), date(2026, 11, 1)]
    pages = window_pages(model, settings, date(2026, 11, 1))
    total = Decimal(0)
    pair_total = Decimal(0)
    for params, response in pages:
        amounts = [Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                   for period in response["ResultsByTime"] for g in period["Groups"]]
        if params["GroupBy"][0]["Key"] == "LINKED_ACCOUNT":
            pair_total += sum(amounts, Decimal(0))
        else:
            total += sum(amounts, Decimal(0))
    assert total == pair_total == model.total(date(2026, 11, 1))


def test_detail_pages_carry_usage_at_the_list_price(model: CostModel) -> None:
    pages = window_pages(model, CostCollectorConfig(), date(2026, 11, 1))
    prices: dict[str, set[float]] = {}
    for params, response in pages:
        for group in (g for period in response["ResultsByTime"] for g in period["Groups"]):
            if params["GroupBy"][0]["Key"] == "LINKED_ACCOUNT":
                assert "UsageQuantity" not in group["Metrics"]  # the pairs ask for cost only
                continue
            amount = float(group["Metrics"]["UnblendedCost"]["Amount"])
            quantity = float(group["Metrics"]["UsageQuantity"]["Amount"])
            assert "e" not in group["Metrics"]["UsageQuantity"]["Amount"]
            prices.setdefault(group["Keys"][1], set()).add(round(amount / quantity * 1e6, 3))
    # $ per million units, whatever the day, account or tag
    assert prices["USE1-Event-64K-Chunks"] == {1.0}
    assert prices["Requests-Tier1"] == {0.4}
    assert prices["NatGateway-Bytes"] == {45_000.0}
    assert prices["Lambda-GB-Second"] == {16.667}


def test_quantities_are_the_amounts_over_the_list_prices(model: CostModel) -> None:
    frame = model.frame
    eventbridge = frame[frame["usage_type"] == "USE1-Event-64K-Chunks"]
    # $1 a million events: as many events as millionths of a dollar
    assert eventbridge["quantity"].to_numpy() == pytest.approx(
        eventbridge["micros"].to_numpy(), rel=1e-12)
    record = model.records()[0]
    assert record.quantity == pytest.approx(
        float(record.amount) / list_price(record.service, record.usage_type)[0])


# --- scenario --------------------------------------------------------------------------------


def test_cost_spike_scenario_entries_are_checked() -> None:
    good = {"at": "+1m", "action": "cost_spike", "account": "777777777777",
            "service": "EC2 - Other", "usage_type": "NatGateway-Bytes", "factor": 8, "days": 2}
    (event,) = parse_events({"events": [good]}, "s.toml")
    assert event.params["factor"] == 8 and event.params["days"] == 2
    with pytest.raises(ScenarioError) as error:
        parse_events({"events": [{**good, "factor": 0, "days": 0}]}, "s.toml")
    assert any("factor = 0" in line for line in error.value.lines)
    assert any("days = 0" in line for line in error.value.lines)
