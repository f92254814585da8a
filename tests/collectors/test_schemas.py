"""Schemas collector against a fake Schemas client (the simulator's API is in
tests/sim/test_schemas_api.py; every shape botocore allows in tests/shapes/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from collectors.schemas import DISCOVERED_REGISTRY, collect_schemas, source_of_name
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import EVENT_SCHEMAS
from sim.discovery import openapi_content

T0 = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)  # a year's last minute
EVENT = {"source": "shop.payments", "detail-type": "Payment Processed", "account": "1",
         "detail": {"purpose": "order", "amount": 4.5}}
MOVED = {**EVENT, "detail": {"context": {"purpose": "order"}, "amount": 4.5}}


def _not_found(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "NotFoundException", "Message": "gone"}}, operation)


class FakeSchemas:
    """Answers the four calls from ``schemas`` (name -> list of content, or an exception)."""

    def __init__(self, discoverers: list[dict[str, Any]],
                 schemas: dict[str, list[str | Exception]] | None = None) -> None:
        self.discoverers = discoverers
        self.schemas = schemas
        self.calls: list[str] = []

    def get_paginator(self, operation: str) -> Any:
        client = self

        class Paginator:
            def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
                client.calls.append(operation)
                yield getattr(client, operation)(**params)

        return Paginator()

    def list_discoverers(self) -> dict[str, Any]:
        return {"Discoverers": self.discoverers}

    def list_schemas(self, RegistryName: str) -> dict[str, Any]:
        if self.schemas is None or RegistryName != DISCOVERED_REGISTRY:
            raise _not_found("ListSchemas")
        return {"Schemas": [{"SchemaName": name} for name in self.schemas] + [{}]}

    def list_schema_versions(self, RegistryName: str, SchemaName: str
                             ) -> dict[str, Any]:
        assert self.schemas is not None
        return {"SchemaVersions": [{"SchemaVersion": str(i + 1)}
                                   for i in range(len(self.schemas[SchemaName]))]
                + [{"SchemaVersion": None}]}

    def describe_schema(self, RegistryName: str, SchemaName: str,
                        SchemaVersion: str) -> dict[str, Any]:
        self.calls.append("describe_schema")
        assert self.schemas is not None
        content = self.schemas[SchemaName][int(SchemaVersion) - 1]
        if isinstance(content, Exception):
            raise content
        return {"Content": content, "SchemaVersion": SchemaVersion, "Type": "OpenApi3",
                "VersionCreatedDate": T0 + timedelta(minutes=int(SchemaVersion))}


def context(client: FakeSchemas) -> CollectContext:
    return CollectContext(account=Account("121212121212", "event-bus", "platform"),
                          region="us-east-1", window=Window(T0, T0), collected_at=T0,
                          client_factory=lambda service: client)


STARTED = [{"DiscovererId": "d", "State": "STARTED"}]


@pytest.mark.parametrize("discoverers", [[], [{"DiscovererId": "d", "State": "STOPPED"}]])
def test_no_started_discoverer_reads_nothing_more(discoverers: list[dict[str, Any]]) -> None:
    client = FakeSchemas(discoverers, {"x@Y": [openapi_content(EVENT)]})
    frame = collect_schemas(context(client))[EVENT_SCHEMAS.name]
    assert frame.empty and list(frame.columns) == EVENT_SCHEMAS.columns
    assert client.calls == ["list_discoverers"]


def test_discovery_on_but_no_registry_yet_is_empty() -> None:
    assert collect_schemas(context(FakeSchemas(STARTED)))[EVENT_SCHEMAS.name].empty


def test_every_version_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeSchemas(STARTED, {"shop.payments@PaymentProcessed": [
        openapi_content(EVENT), "{not json", _not_found("DescribeSchema"),
        openapi_content(MOVED)]})
    frame = collect_schemas(context(client))[EVENT_SCHEMAS.name]
    assert frame.version.tolist() == ["1", "4"]
    assert frame.source.unique().tolist() == ["shop.payments"]
    assert frame.detail_type.unique().tolist() == ["Payment Processed"]
    assert json.loads(frame.fields.iloc[1]) == {"detail.amount": "number",
                                                "detail.context.purpose": "string"}
    assert frame.version_created.tolist() == [T0 + timedelta(minutes=1),
                                              T0 + timedelta(minutes=4)]
    assert frame.field_count.tolist() == [2, 2]
    assert "version 2, unreadable content" in caplog.text
    assert "version 3 is gone" in caplog.text
    assert "without a name" in caplog.text and "without a number" in caplog.text


def test_other_errors_fail_the_run() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                         "DescribeSchema")
    client = FakeSchemas(STARTED, {"a@B": [denied]})
    with pytest.raises(ClientError):
        collect_schemas(context(client))


def test_source_of_a_discovered_schema_name() -> None:
    assert source_of_name("aws.ec2@EC2InstanceStateChangeNotification") == "aws.ec2"
    assert source_of_name("custom-name") is None


def test_known_versions_are_carried_over_and_only_new_ones_described() -> None:
    first = FakeSchemas(STARTED, {"shop.payments@PaymentProcessed": [openapi_content(EVENT)]})
    stored = collect_schemas(context(first))[EVENT_SCHEMAS.name]
    later = T0 + timedelta(minutes=15)
    second = FakeSchemas(STARTED, {"shop.payments@PaymentProcessed": [
        "content no longer read", openapi_content(MOVED)]})
    elsewhere = stored.assign(account_id="999999999999", version="2")  # another account's
    ctx = CollectContext(account=Account("121212121212", "event-bus", "platform"),
                         region="us-east-1", window=Window(later, later), collected_at=later,
                         client_factory=lambda service: second,
                         inputs={EVENT_SCHEMAS.name: pd.concat([stored, elsewhere])})
    frame = collect_schemas(ctx)[EVENT_SCHEMAS.name]
    assert second.calls.count("describe_schema") == 1  # version 2 only
    assert frame.version.tolist() == ["1", "2"]
    assert frame.fields.iloc[0] == stored.fields.iloc[0]
    assert frame.collected_at.unique().tolist() == [later]
