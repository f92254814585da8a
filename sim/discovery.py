"""Schema discovery for the simulated organization: discoverers on some buses, and the
``discovered-schemas`` registry they fill from the events the traffic model delivers.

moto has no Schemas API (simulator-only, docs/simulator.md "Schema discovery"). Like AWS's
discoverer, a started discoverer on a bus registers a schema per (source, detail-type) the
first time such an event reaches the bus, named ``<source>@<DetailTypeWithoutSpaces>``, with
OpenAPI 3 content (``components.schemas.AWSEvent`` carrying ``x-amazon-events-source`` and
``x-amazon-events-detail-type``, its ``detail`` a ``$ref`` to one component per object), and a
new version when an event arrives whose shape no earlier version had. A shape seen before
(an old producer still sending the previous shape during a rollout) adds no version.
Versions are numbered "1", "2"... per schema, as AWS does; ``VersionCreatedDate`` is the
minute the shape first arrived. A discoverer without ``cross_account`` ignores events other
accounts sent, as AWS's does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REGISTRY = "discovered-schemas"
_ENVELOPE = ("account", "detail-type", "id", "region", "resources", "source", "time",
             "version")


@dataclass(frozen=True)
class Discoverer:
    """A discoverer on one bus (``source_arn``)."""

    discoverer_id: str
    arn: str
    source_arn: str
    cross_account: bool
    state: str = "STARTED"


@dataclass(frozen=True)
class SchemaVersion:
    version: str
    content: str
    created: datetime


@dataclass
class DiscoveredSchema:
    name: str
    arn: str
    versions: list[SchemaVersion] = field(default_factory=list)


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))


def schema_name(source: str, detail_type: str) -> str:
    """AWS's name of a discovered schema: ``<source>@<DetailTypeWithoutSpaces>``."""
    return f"{source}@{_pascal(detail_type)}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array" if isinstance(value, list) \
        else "string"


def _object_schema(value: Mapping[str, Any], name: str,
                   components: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key in sorted(value):
        properties[key] = _value_schema(value[key], f"{name}{_pascal(key)}" if name != "Detail"
                                        else _pascal(key), components)
    return {"type": "object", "required": sorted(value), "properties": properties}


def _value_schema(value: Any, name: str, components: dict[str, Any]) -> dict[str, Any]:
    kind = _json_type(value)
    if kind == "object":
        components[name] = _object_schema(value, name, components)
        return {"$ref": f"#/components/schemas/{name}"}
    if kind == "array":
        first = value[0] if value else ""
        return {"type": "array", "items": _value_schema(first, f"{name}Item", components)}
    return {"type": kind}


def openapi_content(event: Mapping[str, Any]) -> str:
    """The OpenAPI 3 schema a discoverer writes for ``event``'s shape (values dropped)."""
    source, detail_type = str(event["source"]), str(event["detail-type"])
    title = _pascal(detail_type)
    components: dict[str, Any] = {}
    detail = event.get("detail") or {}
    components[title] = _object_schema(detail, "Detail", components)
    envelope: dict[str, Any] = {key: {"type": "string"} for key in _ENVELOPE}
    envelope["resources"] = {"type": "array", "items": {"type": "string"}}
    envelope["time"] = {"type": "string", "format": "date-time"}
    envelope["detail"] = {"$ref": f"#/components/schemas/{title}"}
    components["AWSEvent"] = {
        "type": "object", "required": ["detail-type", "resources", "detail", "id", "source",
                                       "time", "region", "version", "account"],
        "x-amazon-events-detail-type": detail_type, "x-amazon-events-source": source,
        "properties": dict(sorted(envelope.items()))}
    document = {"openapi": "3.0.0",
                "info": {"version": "1.0.0", "title": title},
                "paths": {},
                "components": {"schemas": dict(sorted(components.items()))}}
    return json.dumps(document, sort_keys=False)


class SchemaRegistry:
    """Every account's discoverers and discovered schemas (thread-safe: the server's threads
    read while the traffic thread writes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._discoverers: dict[tuple[str, str], list[Discoverer]] = {}
        self._schemas: dict[tuple[str, str], dict[str, DiscoveredSchema]] = {}

    def add_discoverer(self, account: str, region: str, bus: str, *,
                       cross_account: bool = True) -> Discoverer:
        """Start discovery on ``bus`` of ``account`` (what CreateDiscoverer does)."""
        bus_arn = f"arn:aws:events:{region}:{account}:event-bus/{bus}"
        discoverer_id = f"events-event-bus-{bus}"[:64]
        found = Discoverer(discoverer_id,
                           f"arn:aws:schemas:{region}:{account}:discoverer/{discoverer_id}",
                           bus_arn, cross_account)
        with self._lock:
            self._discoverers.setdefault((account, region), []).append(found)
        return found

    def discoverers(self, account: str, region: str) -> list[Discoverer]:
        with self._lock:
            return list(self._discoverers.get((account, region), []))

    def discovering(self, account: str, region: str, bus: str) -> Discoverer | None:
        """The started discoverer on ``bus``, if any."""
        arn = f"arn:aws:events:{region}:{account}:event-bus/{bus}"
        return next((d for d in self.discoverers(account, region)
                     if d.source_arn == arn and d.state == "STARTED"), None)

    def observe(self, account: str, region: str, bus: str, event: Mapping[str, Any],
                when: datetime) -> str | None:
        """An event reached ``bus``: register its shape if the bus discovers it and no version
        had it. Returns the new version's number, or None."""
        discoverer = self.discovering(account, region, bus)
        if discoverer is None or (not discoverer.cross_account
                                  and event.get("account") not in (None, account)):
            return None
        name = schema_name(str(event["source"]), str(event["detail-type"]))
        content = openapi_content(event)
        with self._lock:
            schemas = self._schemas.setdefault((account, region), {})
            schema = schemas.get(name)
            if schema is None:
                schema = DiscoveredSchema(
                    name, f"arn:aws:schemas:{region}:{account}:schema/{REGISTRY}/{name}")
                schemas[name] = schema
            if any(v.content == content for v in schema.versions):
                return None
            version = str(len(schema.versions) + 1)
            schema.versions.append(SchemaVersion(version, content, when))
            return version

    def schemas(self, account: str, region: str) -> list[DiscoveredSchema]:
        """The account's discovered schemas, by name (copies of their version lists)."""
        with self._lock:
            found = self._schemas.get((account, region), {})
            return [DiscoveredSchema(s.name, s.arn, list(s.versions))
                    for _, s in sorted(found.items())]

    def has_registry(self, account: str, region: str) -> bool:
        with self._lock:
            return (account, region) in self._schemas or bool(
                self._discoverers.get((account, region)))
