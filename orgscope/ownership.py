"""Which team owns a resource (pure functions).

A rule, bus or queue tagged with the organization's team tag (``[collectors.cost] tag_key``,
``Team`` by default) belongs to that team, whatever account it lives in: the platform team's
central bus holds rules that other teams own. Untagged resources belong to their account's
team. Alerts (labels and Slack routing), heal's audit rows and the pages all ask
:func:`resource_team`, so a rule is the same team's everywhere.

A tag is written by whoever can deploy in a member account, so it is trusted only to name a
team the organization's config knows (:func:`known_teams`): an unknown value (or markup, a
mention, a link) leaves the resource with its account's team, and cannot route an alert to
another channel or put text of its own into a message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd

from orgscope.config import Config
from orgscope.jsontext import json_object

#: (account_id, region, bus, rule): how every dataset keys a rule.
RuleKey = tuple[str, str, str, str]


def parse_tags(text: Any) -> dict[str, str]:
    """A ``tags`` cell (JSON object text, as the inventory stores it) -> dict; empty for null,
    unreadable or non-object text. Keys and values become strings."""
    return {str(k): str(v) for k, v in json_object(text).items()}


def team_tag_key(config: Config) -> str:
    """The organization's team tag: the cost collector's ``tag_key`` (Cost Explorer groups
    by the same tag)."""
    return config.collector_value("cost", "tag_key", str)


def known_teams(config: Config) -> frozenset[str]:
    """Every team config.toml names: the accounts' (now and in their history), the budgets',
    the Slack routes' and the platform team."""
    teams = {config.cost.platform_team, *config.cost.budgets}
    for account in config.accounts:
        teams.add(account.team)
        teams.update(period.team for period in account.team_history)
    teams.update(route.team for route in config.slack.routes if route.team != "*")
    return frozenset(teams)


def tag_team(tags: Mapping[str, str], tag_key: str = "Team",
             known: Collection[str] | None = None) -> str | None:
    """The team ``tags`` name under ``tag_key`` (the key compared without case, as AWS users
    spell it both ways), stripped; None when absent, blank or, with ``known`` given, not one
    of those teams (compared without case; the known spelling is returned)."""
    wanted = tag_key.lower()
    for key, value in tags.items():
        if key.lower() != wanted or not value.strip():
            continue
        if known is None:
            return value.strip()
        by_case = {team.lower(): team for team in known}
        return by_case.get(value.strip().lower())
    return None


def resource_team(tags: Any, account_team: str | None, tag_key: str = "Team",
                  known: Collection[str] | None = None) -> str | None:
    """The team that owns a resource: its own team tag (one of ``known`` when given), else
    its account's team."""
    return tag_team(parse_tags(tags), tag_key, known) or account_team


def rule_teams(rules: pd.DataFrame, tag_key: str = "Team",
               known: Collection[str] | None = None) -> dict[RuleKey, str]:
    """{rule key: team} for every rule of the inventory (``rules``: account_id, region, bus,
    rule, tags) whose own tags name a team (one of ``known`` when given); rules without one
    are left out (their account's team applies)."""
    if rules.empty or "tags" not in rules:
        return {}
    found: dict[RuleKey, str] = {}
    for account_id, region, bus, rule, tags in rules[
            ["account_id", "region", "bus", "rule", "tags"]].itertuples(index=False):
        team = tag_team(parse_tags(tags), tag_key, known)
        if team:
            key = (str(account_id), str(region), str(bus) if isinstance(bus, str) else "default",
                   str(rule))
            found[key] = team
    return found
