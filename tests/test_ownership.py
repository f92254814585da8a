"""The team of a resource: its own team tag, else its account's."""

from __future__ import annotations

import json

import pandas as pd

from orgscope.ownership import parse_tags, resource_team, rule_teams, tag_team


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
