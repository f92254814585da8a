"""Which team owns a resource (pure functions).

A rule, bus or queue tagged with the organization's team tag (``[collectors.cost] tag_key``,
``Team`` by default) belongs to that team, whatever account it lives in: the platform team's
central bus holds rules that other teams own. Untagged resources belong to their account's
team. Health, alerts (labels and Slack routing), heal's audit rows and the pages all ask
:func:`resource_team`, so a rule is the same team's everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from orgscope.jsontext import json_object

#: (account_id, region, bus, rule): how every dataset keys a rule.
RuleKey = tuple[str, str, str, str]


def parse_tags(text: Any) -> dict[str, str]:
    """A ``tags`` cell (JSON object text, as the inventory stores it) -> dict; empty for null,
    unreadable or non-object text. Keys and values become strings."""
    return {str(k): str(v) for k, v in json_object(text).items()}


def tag_team(tags: Mapping[str, str], tag_key: str = "Team") -> str | None:
    """The team ``tags`` name under ``tag_key`` (the key compared without case, as AWS users
    spell it both ways), stripped; None when absent or blank."""
    wanted = tag_key.lower()
    for key, value in tags.items():
        if key.lower() == wanted and value.strip():
            return value.strip()
    return None


def resource_team(tags: Any, account_team: str | None, tag_key: str = "Team") -> str | None:
    """The team that owns a resource: its own team tag, else its account's team."""
    return tag_team(parse_tags(tags), tag_key) or account_team


def rule_teams(rules: pd.DataFrame, tag_key: str = "Team") -> dict[RuleKey, str]:
    """{rule key: team} for every rule of the inventory (``rules``: account_id, region, bus,
    rule, tags) whose own tags name a team; rules without one are left out (their account's
    team applies)."""
    if rules.empty or "tags" not in rules:
        return {}
    found: dict[RuleKey, str] = {}
    for account_id, region, bus, rule, tags in rules[
            ["account_id", "region", "bus", "rule", "tags"]].itertuples(index=False):
        team = tag_team(parse_tags(tags), tag_key)
        if team:
            key = (str(account_id), str(region), str(bus) if isinstance(bus, str) else "default",
                   str(rule))
            found[key] = team
    return found
