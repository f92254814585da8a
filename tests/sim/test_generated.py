"""Generated organizations: deterministic per seed, valid config, AWS-shaped datapoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orgscope.config_toml import to_toml
from orgscope.plugins import parse_config
from testkit.generated_org import (
    GeneratedSpec,
    account_ids,
    account_minute,
    count_totals,
    generated_config_data,
    generated_rules,
    rule_minute,
)
from tests.conftest import reference_data

MINUTE = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)


def test_account_ids_are_distinct_twelve_digits_and_stable_per_seed() -> None:
    ids = account_ids(300, seed=7)
    assert len(set(ids)) == 300
    assert all(len(i) == 12 and i.isdigit() for i in ids)
    assert ids == account_ids(300, seed=7)
    assert ids[:12] == account_ids(12, seed=7)
    assert ids != account_ids(300, seed=8)


def test_generated_config_is_valid_and_watches_every_account() -> None:
    spec = GeneratedSpec(accounts=25, rules_per_account=4)
    config = parse_config(generated_config_data(spec, reference_data(), "/tmp/store",
                                                backfill_minutes=15))
    assert [a.id for a in config.accounts] == account_ids(25, 7)
    assert config.organization.management_account_id == config.accounts[0].id
    assert config.organization.central_bus_account_id == config.accounts[1].id
    assert config.collector_value("metrics", "backfill", timedelta) == timedelta(minutes=15)
    assert config.store.path == "/tmp/store"


def test_rules_are_stable_and_named_uniquely_per_account() -> None:
    spec = GeneratedSpec(accounts=3, rules_per_account=40)
    rules = generated_rules(spec, "123456789012")
    assert rules == generated_rules(spec, "123456789012")
    assert len({r.name for r in rules}) == 40
    assert all(len(r.name) <= 64 and r.peak_per_min > 0 for r in rules)


def test_rule_datapoints_are_consistent_and_omit_zero_counts() -> None:
    spec = GeneratedSpec(accounts=3, rules_per_account=30)
    for rule in generated_rules(spec, "123456789012"):
        points = rule_minute(rule, MINUTE, seed=7)
        assert points == rule_minute(rule, MINUTE, seed=7)
        counts = {p["MetricName"]: p["Value"] for p in points if "Value" in p}
        assert all(value > 0 for value in counts.values())
        if not points:
            continue
        assert points[0]["Dimensions"] == [{"Name": "RuleName", "Value": rule.name}]
        matched = counts["MatchedEvents"]
        failed = counts.get("FailedInvocations", 0.0)
        assert counts["Invocations"] == matched
        assert counts.get("SuccessfulInvocationAttempts", 0.0) == matched - failed
        assert failed == 0.0 or rule.failing


def test_account_totals_count_only_the_window() -> None:
    spec = GeneratedSpec(accounts=3, rules_per_account=10)
    rules = generated_rules(spec, "123456789012")
    data = [d for m in range(10) for d in account_minute(rules, MINUTE + timedelta(minutes=m), 7)]
    whole = count_totals(data, MINUTE, MINUTE + timedelta(minutes=10))
    first = count_totals(data, MINUTE, MINUTE + timedelta(minutes=5))
    assert whole["MatchedEvents"] > first["MatchedEvents"] > 0
    assert whole["PutEventsEntriesCount"] == whole["MatchedEvents"]
    assert "IngestionToInvocationStartLatency" not in whole


@pytest.mark.parametrize("kwargs", [{"accounts": 0, "rules_per_account": 1},
                                    {"accounts": 1, "rules_per_account": 301},
                                    {"accounts": 1, "rules_per_account": 1,
                                     "history_minutes": -1}])
def test_bad_sizes_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        GeneratedSpec(**kwargs)


def test_generated_config_round_trips_through_toml() -> None:
    import tomllib

    data = generated_config_data(GeneratedSpec(accounts=5, rules_per_account=1),
                                 reference_data(), "/tmp/store \"x\"", backfill_minutes=10)
    text = to_toml(data)
    assert tomllib.loads(text) == data
    assert parse_config(tomllib.loads(text)).accounts[4].id == account_ids(5, 7)[4]
