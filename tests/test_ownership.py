"""The team of a resource: its own team tag, else its account's."""

from __future__ import annotations

import json

import pandas as pd

from orgscope.config import Config
from orgscope.ownership import known_teams, parse_tags, resource_team, rule_teams, tag_team


def test_tags_text_is_read_or_empty() -> None:
    assert parse_tags('{"a": "b", "n": 1}') == {"a": "b", "n": "1"}
    assert parse_tags(None) == {} and parse_tags("not json") == {} and parse_tags("[1]") == {}
    assert parse_tags(float("nan")) == {} and parse_tags(pd.NA) == {}


def test_the_tag_wins_over_the_account_and_blank_tags_do_not() -> None:
    assert resource_team('{"Team": "ops"}', "platform") == "ops"
    assert resource_team('{"team": " ops "}', "platform") == "ops"  # AWS users spell both
    assert resource_team('{"Team": "  "}', "platform") == "platform"
    assert resource_team(None, "platform") == "platform"
    assert resource_team('{"Owner": "ops"}', None) is None
    assert tag_team({"CostTeam": "x"}, "CostTeam") == "x"


def test_rule_teams_names_only_rules_with_their_own_tag() -> None:
    rules = pd.DataFrame([
        {"account_id": "121212121212", "region": "us-east-1", "bus": "central-bus",
         "rule": "ops-audit", "tags": json.dumps({"Team": "ops"})},
        {"account_id": "121212121212", "region": "us-east-1", "bus": "central-bus",
         "rule": "untagged", "tags": None},
        {"account_id": "121212121212", "region": "eu-west-1", "bus": None,
         "rule": "nightly", "tags": json.dumps({"Team": "finance"})},
    ])
    assert rule_teams(rules) == {
        ("121212121212", "us-east-1", "central-bus", "ops-audit"): "ops",
        ("121212121212", "eu-west-1", "default", "nightly"): "finance"}
    assert rule_teams(pd.DataFrame()) == {}


def test_a_tag_counts_only_when_it_names_a_team_config_knows() -> None:
    known = {"ops", "platform", "Payments"}
    assert resource_team('{"Team": "ops"}', "platform", known=known) == "ops"
    assert resource_team('{"Team": "payments"}', "ops", known=known) == "Payments"
    # whoever deploys in a member account writes tags: no routing elsewhere, no markup
    for hostile in ("<!channel> <https://evil.example|Open runbook>", "nobody", "@here"):
        assert resource_team(json.dumps({"Team": hostile}), "platform", known=known) == \
            "platform"
    rules = pd.DataFrame([{"account_id": "1", "region": "r", "bus": "b", "rule": "x",
                           "tags": json.dumps({"Team": "<!channel>"})}])
    assert rule_teams(rules, known=known) == {}


def test_known_teams_are_every_team_config_names(config: Config) -> None:
    teams = known_teams(config)
    assert {"orders", "driver", "delivery", "platform", "payments"} <= teams
    assert "*" not in teams
