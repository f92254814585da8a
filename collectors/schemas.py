"""EventBridge schema discovery: every version of every discovered schema, as fields.

AWS APIs wrapped (all read-only, in the account's own region): ``schemas:ListDiscoverers``
(is discovery on for some bus here?), then in the registry ``discovered-schemas``
``schemas:ListSchemas``, ``schemas:ListSchemaVersions`` and ``schemas:DescribeSchema`` (each
version's content: OpenAPI 3, or JSONSchema Draft4). An account or region with no started
discoverer has nothing to read: the run stops after ListDiscoverers and stores an empty
snapshot.

Dataset ``event_schemas``: account_id, region, registry, schema_name, source, detail_type,
version, version_created (when the discoverer first registered the version), content_type,
fields (JSON object: path in the event -> type, for ``detail``'s leaves; see
:func:`orgscope.schema_drift.schema_fields`), field_count, collected_at.

A schema version never changes once registered, so a version the latest ``event_schemas``
snapshot already holds for this account and region (the collector's input) is carried over
without DescribeSchema; only new versions are described. A run therefore costs one
ListDiscoverers, one ListSchemas page, one ListSchemaVersions per schema and one
DescribeSchema per *new* version.

A version whose content cannot be read (not JSON, not an event schema, refs that lead
nowhere) is logged and skipped (and described again next run), and so is a schema or version
deleted between the list and the describe (NotFoundException); the rest are still returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from orgscope.collect import CollectContext, Collector, Frames
from orgscope.config import CollectorConfig, Interval
from orgscope.datasets import EVENT_SCHEMAS
from orgscope.schema_drift import fields_json, schema_fields

log = logging.getLogger(__name__)

#: The registry EventBridge's discoverers write to (one per account and region).
DISCOVERED_REGISTRY = "discovered-schemas"
#: A name no discovered schema has: a probe that needs a schema gets "not found".
PROBE_SCHEMA = "orgscope.access-probe@Probe"


class SchemasCollectorConfig(CollectorConfig):
    """Discovered schemas change when producers ship: every 15 minutes by default."""

    interval: Interval = timedelta(minutes=15)


# --- pure helpers ----------------------------------------------------------------------------


def source_of_name(schema_name: str) -> str | None:
    """A discovered schema's name is ``<source>@<DetailTypeWithoutSpaces>``: its source."""
    return schema_name.rsplit("@", 1)[0] if "@" in schema_name else None


def schema_record(ctx: CollectContext, schema_name: str,
                  described: dict[str, Any]) -> dict[str, Any]:
    """One DescribeSchema answer -> one ``event_schemas`` row; :class:`SchemaContentError`
    (a ValueError) when its content cannot be read, KeyError without a version."""
    parsed = schema_fields(described.get("Content") or "")
    created = described.get("VersionCreatedDate") or described.get("LastModified")
    return {
        "account_id": ctx.account.id,
        "region": ctx.region,
        "registry": DISCOVERED_REGISTRY,
        "schema_name": schema_name,
        "source": parsed.source or source_of_name(schema_name),
        "detail_type": parsed.detail_type,
        "version": str(described["SchemaVersion"]),
        "version_created": pd.Timestamp(created) if created is not None else pd.NaT,
        "content_type": described.get("Type"),
        "fields": fields_json(parsed.fields),
        "field_count": len(parsed.fields),
        "collected_at": ctx.collected_at,
    }


# --- AWS edges -------------------------------------------------------------------------------


def _paginate(client: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**params):
        yield from page.get(key) or []


def _not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == "NotFoundException"


def known_versions(ctx: CollectContext) -> dict[tuple[str, str], dict[str, Any]]:
    """(schema name, version) -> its row in the latest snapshot, for this account and region
    (empty on a first run)."""
    stored = ctx.inputs.get(EVENT_SCHEMAS.name)
    if stored is None or stored.empty:
        return {}
    mine = stored[(stored["account_id"] == ctx.account.id) & (stored["region"] == ctx.region)]
    return {(str(row["schema_name"]), str(row["version"])):
            {column: row[column] for column in EVENT_SCHEMAS.columns}
            for row in mine.to_dict("records")}


def _versions(ctx: CollectContext, client: Any, name: str,
              known: dict[tuple[str, str], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every version of schema ``name``: the stored row of a known one (key ``row``), the
    DescribeSchema answer of a new one (a version gone meanwhile is skipped)."""
    for version in _paginate(client, "list_schema_versions", "SchemaVersions",
                             RegistryName=DISCOVERED_REGISTRY, SchemaName=name):
        number = version.get("SchemaVersion")
        if not isinstance(number, str):
            log.warning("schemas %s %s: skipped a version of %r without a number",
                        ctx.account.id, ctx.region, name)
            continue
        if (name, number) in known:
            yield {"row": {**known[(name, number)], "collected_at": ctx.collected_at}}
            continue
        try:
            yield client.describe_schema(RegistryName=DISCOVERED_REGISTRY, SchemaName=name,
                                         SchemaVersion=number)
        except ClientError as error:
            if not _not_found(error):
                raise
            log.warning("schemas %s %s: %r version %s is gone, skipped", ctx.account.id,
                        ctx.region, name, number)


def discovery_on(client: Any) -> bool:
    """Whether some discoverer of this account and region is STARTED."""
    return any(d.get("State") == "STARTED"
               for d in _paginate(client, "list_discoverers", "Discoverers"))


def collect_schemas(ctx: CollectContext) -> Frames:
    """Every version of every discovered schema of one account and region."""
    client = ctx.client("schemas")
    rows: list[dict[str, Any]] = []
    if not discovery_on(client):
        log.debug("schemas %s %s: no discoverer started, nothing to read", ctx.account.id,
                  ctx.region)
        return {EVENT_SCHEMAS.name: pd.DataFrame(rows, columns=EVENT_SCHEMAS.columns)}
    try:
        summaries = list(_paginate(client, "list_schemas", "Schemas",
                                   RegistryName=DISCOVERED_REGISTRY))
    except ClientError as error:
        if not _not_found(error):
            raise
        summaries = []  # discovery on, nothing discovered yet: no registry
    known = known_versions(ctx)
    for summary in summaries:
        name = summary.get("SchemaName")
        if not isinstance(name, str) or not name:
            log.warning("schemas %s %s: skipped a schema without a name (ARN %s)",
                        ctx.account.id, ctx.region, summary.get("SchemaArn"))
            continue
        try:
            described = list(_versions(ctx, client, name, known))
        except ClientError as error:
            if not _not_found(error):
                raise
            log.warning("schemas %s %s: %r is gone, skipped", ctx.account.id, ctx.region, name)
            continue
        for answer in described:
            if "row" in answer:
                rows.append(answer["row"])
                continue
            try:
                rows.append(schema_record(ctx, name, answer))
            except (ValueError, KeyError, TypeError) as error:
                log.warning("schemas %s %s: skipped %r version %s, unreadable content: %s",
                            ctx.account.id, ctx.region, name, answer.get("SchemaVersion"),
                            error)
    return {EVENT_SCHEMAS.name: pd.DataFrame(rows, columns=EVENT_SCHEMAS.columns)}


SCHEMAS_PROBES = (
    ("schemas:ListDiscoverers", lambda ctx: ctx.client("schemas").list_discoverers(Limit=1)),
    ("schemas:ListSchemas", lambda ctx: ctx.client("schemas").list_schemas(
        RegistryName=DISCOVERED_REGISTRY, Limit=1)),
    ("schemas:ListSchemaVersions", lambda ctx: ctx.client("schemas").list_schema_versions(
        RegistryName=DISCOVERED_REGISTRY, SchemaName=PROBE_SCHEMA, Limit=1)),
    ("schemas:DescribeSchema", lambda ctx: ctx.client("schemas").describe_schema(
        RegistryName=DISCOVERED_REGISTRY, SchemaName=PROBE_SCHEMA)),
)

SCHEMAS = Collector(
    name="schemas",
    settings=SchemasCollectorConfig,
    fn=collect_schemas,
    datasets=(EVENT_SCHEMAS,),
    inputs=(EVENT_SCHEMAS.name,),
    scope="regional",
    description="EventBridge discovered event schemas: every version, with its fields.",
    iam_actions=(
        "schemas:ListDiscoverers",
        "schemas:ListSchemas",
        "schemas:ListSchemaVersions",
        "schemas:DescribeSchema",
    ),
    probes=SCHEMAS_PROBES,
)
