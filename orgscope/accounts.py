"""Which accounts orgscope watches: from config.toml, or discovered from AWS Organizations.

Discovery (``organization.discovery = "organizations"``) wraps Organizations ListAccounts and
ListTagsForResource, called from the management account through the read role. SUSPENDED
accounts are skipped; Team and CostCenter come from the account's tags, and an ``[[accounts]]``
entry in config.toml with the same id overrides what the tags say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from orgscope.config import AccountConfig, Config

log = logging.getLogger(__name__)

UNKNOWN_TEAM = "unassigned"

#: IAM actions discovery calls through the read role (orgscope/iam/orgscope-read-role.yaml).
DISCOVERY_ACTIONS = ("organizations:ListAccounts", "organizations:ListTagsForResource")


@dataclass(frozen=True)
class Account:
    """One AWS account as orgscope sees it."""

    id: str
    name: str
    team: str
    environment: str = "production"
    cost_center: str = ""
    shared: bool = False

    @classmethod
    def from_config(cls, entry: AccountConfig) -> Account:
        return cls(
            id=entry.id,
            name=entry.name,
            team=entry.team,
            environment=entry.environment,
            cost_center=entry.cost_center,
            shared=entry.shared,
        )


def accounts_from_config(config: Config) -> list[Account]:
    return [Account.from_config(entry) for entry in config.accounts]


def _tags(organizations: Any, account_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    paginator = organizations.get_paginator("list_tags_for_resource")
    for page in paginator.paginate(ResourceId=account_id):
        for tag in page.get("Tags", []):
            tags[tag["Key"]] = tag["Value"]
    return tags


def discover_accounts(organizations: Any, config: Config) -> list[Account]:
    """Organizations ListAccounts (+ tags) -> accounts, skipping SUSPENDED ones.

    ``organizations`` is a client in the management account. Accounts that config.toml also
    lists take their name, team and cost center from config.toml.
    """
    found: list[Account] = []
    paginator = organizations.get_paginator("list_accounts")
    for page in paginator.paginate():
        for entry in page.get("Accounts", []):
            account_id = entry["Id"]
            status = entry.get("Status", "ACTIVE")
            if status != "ACTIVE":
                log.info("skipping account %s (%s): status %s", account_id,
                         entry.get("Name"), status)
                continue
            configured = config.account(account_id)
            if configured is not None:
                found.append(Account.from_config(configured))
                continue
            tags = _tags(organizations, account_id)
            found.append(
                Account(
                    id=account_id,
                    name=entry.get("Name") or account_id,
                    team=tags.get("Team", UNKNOWN_TEAM),
                    environment=tags.get("Environment", "production"),
                    cost_center=tags.get("CostCenter", ""),
                )
            )
    found.sort(key=lambda account: account.name)
    return found
