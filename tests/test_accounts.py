"""Organizations discovery: suspended accounts skipped, tags read, config overrides tags."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from orgscope.accounts import accounts_from_config, discover_accounts
from orgscope.config import Config


def organizations_stub() -> tuple[object, Stubber]:
    client = boto3.client("organizations", region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
    return client, Stubber(client)


def account(account_id: str, name: str, status: str = "ACTIVE") -> dict[str, str]:
    return {"Id": account_id, "Name": name, "Status": status,
            "Arn": f"arn:aws:organizations::101010101010:account/o-x/{account_id}",
            "Email": f"{name}@example.com"}


def test_discovery_skips_suspended_and_reads_tags(config: Config) -> None:
    client, stub = organizations_stub()
    stub.add_response("list_accounts", {"Accounts": [account("222233334444", "analytics")],
                                        "NextToken": "page2"}, {})
    stub.add_response("list_tags_for_resource", {"Tags": [
        {"Key": "Team", "Value": "data"}, {"Key": "CostCenter", "Value": "CC-9"},
        {"Key": "Environment", "Value": "staging"}]}, {"ResourceId": "222233334444"})
    stub.add_response("list_accounts", {"Accounts": [
        account("555566667777", "old-sandbox", status="SUSPENDED"),
        account("111111111111", "renamed-in-aws"),
    ]}, {"NextToken": "page2"})
    with stub:
        found = discover_accounts(client, config)
    assert [(a.id, a.name, a.team, a.cost_center, a.environment) for a in found] == [
        ("222233334444", "analytics", "data", "CC-9", "staging"),
        # listed in config.toml too: config wins over what Organizations says
        ("111111111111", "customer-web", "customer-web", "CC-1001", "production"),
    ]
    stub.assert_no_pending_responses()


def test_untagged_account_is_unassigned(config: Config) -> None:
    client, stub = organizations_stub()
    stub.add_response("list_accounts", {"Accounts": [account("222233334444", "analytics")]}, {})
    stub.add_response("list_tags_for_resource", {"Tags": []}, {"ResourceId": "222233334444"})
    with stub:
        (found,) = discover_accounts(client, config)
    assert found.team == "unassigned"


def test_accounts_from_config(config: Config) -> None:
    accounts = accounts_from_config(config)
    assert len(accounts) == 13
    assert {a.id for a in accounts if a.shared} == {
        "000000000000", "121212121212", "131313131313", "101010101010"}
