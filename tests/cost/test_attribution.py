"""Attribution: the Team tag, the account's team on the day, shared accounts by rule."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from orgscope.config import AccountConfig, CostConfig, TeamPeriod
from orgscope.cost.attribution import (
    METHOD_ACCOUNT,
    METHOD_TAG,
    UNMAPPED,
    UNTAGGED,
    attribute,
)

MOVE = date(2026, 7, 15)
ACCOUNTS = [
    AccountConfig(id="111111111111", name="app", team="delivery",
                  team_history=[TeamPeriod(team="driver", until=MOVE)]),
    AccountConfig(id="222222222222", name="shop", team="orders"),
    AccountConfig(id="333333333333", name="bus", team="platform", shared=True),
]


def cost(*rows: tuple[date, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"date": d, "account_id": a, "team_tag": t, "service": "S", "usage_type": "U",
          "amount": x, "currency": "USD", "estimated": False} for d, a, t, x in rows])


def teams(frame: pd.DataFrame) -> dict[str, float]:
    return {str(k): round(float(v), 6) for k, v in frame.groupby("team")["amount"].sum().items()}


def test_untagged_cost_follows_the_accounts_team_on_that_day() -> None:
    result = attribute(cost((date(2026, 7, 14), "111111111111", "", 10.0),
                            (MOVE, "111111111111", "", 20.0)), ACCOUNTS, CostConfig())
    assert teams(result.frame) == {"driver": 10.0, "delivery": 20.0}
    assert set(result.frame["method"]) == {METHOD_ACCOUNT}


def test_the_team_tag_overrides_the_accounts_team() -> None:
    result = attribute(cost((date(2026, 8, 1), "111111111111", "payments", 5.0)), ACCOUNTS,
                       CostConfig())
    assert teams(result.frame) == {"payments": 5.0}
    assert list(result.frame["method"]) == [METHOD_TAG]


def test_untagged_as_its_own_line_when_configured() -> None:
    result = attribute(cost((date(2026, 8, 1), "222222222222", "", 5.0),
                            (date(2026, 8, 1), "222222222222", "orders", 7.0)), ACCOUNTS,
                       CostConfig(untagged="separate"))
    assert teams(result.frame) == {UNTAGGED: 5.0, "orders": 7.0}


def test_an_account_missing_from_config_is_named_not_dropped() -> None:
    result = attribute(cost((date(2026, 8, 1), "999999999999", "", 3.0)), ACCOUNTS,
                       CostConfig())
    assert teams(result.frame) == {UNMAPPED: 3.0}
    assert "999999999999" in result.notes[0]


@pytest.mark.parametrize(("rule", "expected"), [
    ("platform", {"platform": 12.0}),
    # after the move both non-shared accounts' teams share evenly: delivery, orders
    ("even", {"delivery": 6.0, "orders": 6.0}),
])
def test_shared_accounts_by_rule_whatever_their_tag(rule: str, expected: dict[str, float]) -> None:
    result = attribute(cost((date(2026, 8, 1), "333333333333", "platform", 12.0)), ACCOUNTS,
                       CostConfig(shared_allocation=rule))  # type: ignore[arg-type]
    assert teams(result.frame) == expected
    assert result.frame["method"].str.startswith("shared").all()


def test_shared_by_events_published_and_even_without_them() -> None:
    events = pd.DataFrame({"date": [date(2026, 8, 3), date(2026, 8, 4)],
                           "account_id": ["111111111111", "222222222222"],
                           "entries": [300.0, 100.0]})
    result = attribute(cost((date(2026, 8, 1), "333333333333", "", 40.0),
                            (date(2026, 9, 1), "333333333333", "", 10.0)), ACCOUNTS,
                       CostConfig(shared_allocation="events"), events)
    august = result.frame[result.frame["month"] == "2026-08"]
    september = result.frame[result.frame["month"] == "2026-09"]
    assert teams(august) == {"delivery": 30.0, "orders": 10.0}
    assert teams(september) == {"delivery": 5.0, "orders": 5.0}
    assert any("2026-09" in note and "evenly" in note for note in result.notes)
    assert september["method"].str.contains("no events data").all()


def test_amounts_are_conserved() -> None:
    rows = cost((date(2026, 7, 1), "111111111111", "", 1.25),
                (date(2026, 7, 1), "333333333333", "", 2.5),
                (date(2026, 7, 2), "222222222222", "orders", 4.0))
    for rule in ("platform", "even", "events"):
        result = attribute(rows, ACCOUNTS, CostConfig(shared_allocation=rule))  # type: ignore[arg-type]
        assert result.frame["amount"].sum() == pytest.approx(7.75)
