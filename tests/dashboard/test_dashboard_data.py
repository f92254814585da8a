"""The data layer's queries against a real Store in tmp_path (no Streamlit runtime needed)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from dashboard import data
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import (
    CENTRAL,
    RULE_SPECS,
    UNREACHABLE_ID,
    UNREACHABLE_REASON,
    fill_org_store,
)

CENTRAL_RULES = sum(1 for spec in RULE_SPECS if spec[0] == CENTRAL)
CENTRAL_DISABLED = sum(1 for spec in RULE_SPECS if spec[0] == CENTRAL and spec[5])


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("account_id")


def test_empty_store_has_no_last_collection_and_no_rows(empty_store: Store, now: datetime):
    assert data.last_collection(empty_store) is None
    assert data.accounts_overview(empty_store, Filters(), now).empty
    assert data.rules_inventory(empty_store, Filters()).empty
    assert data.account_choices(empty_store).empty
    assert data.region_choices(empty_store) == []


def test_last_collection_is_the_newest_cycle(org_store: Store, now: datetime):
    assert data.last_collection(org_store) == now


def test_overview_has_every_account_unreachable_first_with_reason(
    org_store: Store, now: datetime
):
    overview = data.accounts_overview(org_store, Filters(), now)
    assert len(overview) == 13
    first = overview.iloc[0]
    assert first["account_id"] == UNREACHABLE_ID
    assert not first["reachable"]
    assert first["reason"] == UNREACHABLE_REASON
    assert overview["reachable"].sum() == 12


def test_unreachable_account_keeps_stale_inventory_with_its_date(
    org_store: Store, now: datetime
):
    row = _by_id(data.accounts_overview(org_store, Filters(), now)).loc[UNREACHABLE_ID]
    # unreachable in the last cycle only: the inventory shown is the previous cycle's
    assert row["unreachable_since"] == now
    assert row["inventory_at"] == now - timedelta(minutes=5)
    assert row["rules"] == sum(1 for spec in RULE_SPECS if spec[0] == UNREACHABLE_ID)


def test_rule_counts_per_account(org_store: Store, now: datetime):
    overview = _by_id(data.accounts_overview(org_store, Filters(), now))
    central = overview.loc[CENTRAL]
    assert central["rules"] == CENTRAL_RULES
    assert central["rules_disabled"] == CENTRAL_DISABLED
    assert central["rules_enabled"] == CENTRAL_RULES - CENTRAL_DISABLED
    # reachable and read, but owns no rules: zero, not "no data"
    assert overview.loc["101010101010", "rules"] == 0


def test_never_read_account_has_null_rules_not_zero(empty_store: Store, now: datetime):
    fill_org_store(empty_store, now, cycles=2, unreachable_last=2)
    row = _by_id(data.accounts_overview(empty_store, Filters(), now)).loc[UNREACHABLE_ID]
    assert pd.isna(row["rules"])
    assert pd.isna(row["inventory_at"])
    assert row["unreachable_since"] == now - timedelta(minutes=5)


def test_time_range_limits_history_counts(empty_store: Store, now: datetime):
    fill_org_store(empty_store, now, cycles=4, every=timedelta(minutes=40), unreachable_last=3)
    hour = _by_id(data.accounts_overview(empty_store, Filters(time_range="1h"), now))
    day = _by_id(data.accounts_overview(empty_store, Filters(time_range="24h"), now))
    assert hour.loc[UNREACHABLE_ID, "checks_in_range"] == 2
    assert hour.loc[UNREACHABLE_ID, "unreachable_in_range"] == 2
    assert day.loc[UNREACHABLE_ID, "checks_in_range"] == 4
    assert day.loc[UNREACHABLE_ID, "unreachable_in_range"] == 3
    assert day.loc[UNREACHABLE_ID, "failed_runs_in_range"] == 3
    assert day.loc[CENTRAL, "failed_runs_in_range"] == 0


def test_account_and_team_filters_narrow_the_overview(org_store: Store, now: datetime):
    platform = data.accounts_overview(org_store, Filters(teams=("platform",)), now)
    assert set(platform["name"]) == {"event-bus", "monitoring", "org-management"}
    one = data.accounts_overview(org_store, Filters(account_ids=(CENTRAL,)), now)
    assert list(one["account_id"]) == [CENTRAL]
    both = Filters(account_ids=(CENTRAL,), teams=("payments",))
    assert data.accounts_overview(org_store, both, now).empty


def test_region_filter_narrows_rule_counts(empty_store: Store, now: datetime):
    fill_org_store(empty_store, now, regions=("us-east-1", "eu-west-1"))
    assert data.region_choices(empty_store) == ["eu-west-1", "us-east-1"]
    every = _by_id(data.accounts_overview(empty_store, Filters(), now))
    east = _by_id(data.accounts_overview(empty_store, Filters(regions=("us-east-1",)), now))
    assert east.loc[CENTRAL, "rules"] == CENTRAL_RULES
    assert every.loc[CENTRAL, "rules"] > CENTRAL_RULES
    west = data.rules_inventory(empty_store, Filters(regions=("eu-west-1",)))
    assert set(west["region"]) == {"eu-west-1"}


def test_rules_inventory_columns_and_parsed_lists(org_store: Store):
    rules = data.rules_inventory(org_store, Filters())
    assert len(rules) == len(RULE_SPECS)
    row = rules[rules["rule"] == "order-placed-to-delivery"].iloc[0]
    assert row["account"] == "event-bus"
    assert row["team"] == "platform"
    assert row["state"] == "DISABLED"
    assert row["targets"] == ["arn:aws:sqs:us-east-1:888888888888:order-placed-queue"]
    assert row["dlq_arns"] == [
        "arn:aws:sqs:us-east-1:121212121212:order-placed-to-delivery-dlq"
    ]


def test_rules_search_is_case_insensitive_plain_text(org_store: Store):
    found = data.rules_inventory(org_store, Filters(), "PAYMENT FAILED")
    assert set(found["rule"]) == {
        "payment-failed-to-customer-web", "payment-failed-to-mobile", "web-payment-failed",
        "mobile-push-payment-failed",
    }
    by_account_name = data.rules_inventory(org_store, Filters(), "partner-portal")
    assert list(by_account_name["rule"]) == ["partner-webhooks"]
    # LIKE wildcards are plain characters here
    assert data.rules_inventory(org_store, Filters(), "%").empty
    assert data.rules_inventory(org_store, Filters(), "order_placed").empty


def test_user_values_are_parameters_not_sql(org_store: Store, now: datetime):
    hostile = "x' OR '1'='1"
    assert data.rules_inventory(org_store, Filters(), hostile).empty
    assert data.rules_inventory(org_store, Filters(account_ids=(hostile,))).empty
    assert data.accounts_overview(org_store, Filters(teams=(hostile,)), now).empty
    assert data.rules_inventory(org_store, Filters(regions=("'; DROP VIEW rules; --",))).empty
    assert len(data.rules_inventory(org_store, Filters())) == len(RULE_SPECS)


def test_rule_state_counts_long_form(org_store: Store, now: datetime):
    overview = data.accounts_overview(org_store, Filters(), now)
    counts = data.rule_state_counts(overview)
    central = counts[counts["account"] == "event-bus"].set_index("state")["rules"]
    assert central.to_dict() == {
        "ENABLED": CENTRAL_RULES - CENTRAL_DISABLED, "DISABLED": CENTRAL_DISABLED,
    }
    assert counts.loc[counts["account"] == "driver-app", "rules"].tolist() == [0]


def test_rule_state_counts_leaves_out_never_read_accounts(empty_store: Store, now: datetime):
    fill_org_store(empty_store, now, cycles=1, unreachable_last=1)
    overview = data.accounts_overview(empty_store, Filters(), now)
    assert "payment-service" not in set(data.rule_state_counts(overview)["account"])



def test_state_colours_are_stable_and_cover_unknown_states():
    colours = data.state_colours(["DISABLED", "ENABLED", "UNKNOWN"])
    assert colours["ENABLED"] == data.STATE_COLOURS["ENABLED"]
    assert colours["DISABLED"] == data.STATE_COLOURS["DISABLED"]
    assert colours["UNKNOWN"] == data.OTHER_STATE_COLOUR
