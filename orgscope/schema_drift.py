"""Schema drift under the rules: discovered event schemas as fields, their versions diffed,
and every rule's event pattern crossed with them (pure functions; docs/schemas.md).

* :func:`schema_fields` reads a schema's content (OpenAPI 3, as EventBridge's discoverer
  writes it, or JSONSchema Draft4) into its source, detail-type and the fields of ``detail``:
  one dotted path (``detail.context.purpose``) and type (``string``, ``number``,
  ``integer``, ``boolean``, ``object``, ``array<T>``) per leaf. Content it cannot read raises
  :class:`SchemaContentError` (the caller logs and skips that version).
* :func:`diff_fields` compares two consecutive versions: fields added, removed, retyped and
  moved (a field removed and one added under another parent with the same name and type).
* :func:`pattern_tests` lists what an event pattern tests in ``detail``: each field path and
  the types of value its matchers can match.
* :func:`rule_dependencies` and :func:`breaking_changes` cross the rules with the newest
  version of each detail-type they match: a test of a field the newest version no longer
  sends (or no longer sends with a type it can match), which an earlier version did, is a
  rule that will go silent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from orgscope.jsontext import parsed_object
from orgscope.patterns import source_matchers

log = logging.getLogger(__name__)

#: How deep a schema's ``$ref`` chain or nesting is followed (a cycle stops here).
MAX_DEPTH = 12
#: Matchers whose values are strings, whatever they are written as.
_STRING_MATCHERS = frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard", "cidr"})
#: Columns of :func:`breaking_changes`' frame.
BREAK_COLUMNS = ("account_id", "region", "bus", "rule", "source", "detail_type",
                 "schema_account_id", "schema_region", "field", "change", "moved_to", "expected",
                 "old_type", "new_type", "from_version", "to_version", "newest_version",
                 "to_version_created", "producers")
#: Columns of :func:`rule_dependencies`' frame.
DEPENDENCY_COLUMNS = ("account_id", "region", "bus", "rule", "source", "detail_type",
                      "field", "expected", "newest_version", "newest_type", "status")


class SchemaContentError(ValueError):
    """A schema's content that is not an event schema orgscope can read."""


@dataclass(frozen=True)
class SchemaFields:
    """What one schema version says: its event's source and detail-type, and detail's fields
    (path -> type)."""

    source: str | None
    detail_type: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class FieldChange:
    """One difference between consecutive versions. ``kind``: added, removed, retyped or
    moved; ``path`` the field in the newer version (the older one for removed); ``old_path``
    where a moved field was."""

    kind: str
    path: str
    old_type: str | None
    new_type: str | None
    old_path: str | None = None


@dataclass(frozen=True)
class FieldTest:
    """What a pattern tests: a path in the event and the value types its matchers match
    (``any``: presence alone)."""

    path: str
    types: frozenset[str]

    @property
    def expected(self) -> str:
        return "|".join(sorted(self.types))


# --- schema content ---------------------------------------------------------------------------


def _resolve(document: Mapping[str, Any], node: Any, depth: int) -> Mapping[str, Any]:
    """``node`` with its ``$ref`` (a local JSON pointer) followed."""
    while isinstance(node, Mapping) and "$ref" in node:
        if depth > MAX_DEPTH:
            raise SchemaContentError("$ref chain too deep (a cycle?)")
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise SchemaContentError(f"unsupported $ref {str(ref)[:80]!r}")
        target: Any = document
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise SchemaContentError(f"$ref {ref[:80]!r} points nowhere")
            target = target[part]
        node = target
        depth += 1
    if not isinstance(node, Mapping):
        raise SchemaContentError("a schema node is not an object")
    return node


def _type_of(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):  # Draft4 allows ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in node:
        kind = "object"
    return str(kind) if isinstance(kind, str) else "any"


def _walk(document: Mapping[str, Any], node: Any, path: str, depth: int,
          out: dict[str, str], *, array: bool = False) -> None:
    if depth > MAX_DEPTH:
        raise SchemaContentError(f"{path}: nested too deep")
    node = _resolve(document, node, depth)
    kind = _type_of(node)
    if kind == "array":
        items = node.get("items", {})
        _walk(document, items if isinstance(items, Mapping) else {}, path, depth + 1, out,
              array=True)
        return
    properties = node.get("properties")
    if kind == "object" and isinstance(properties, Mapping) and properties:
        for name, child in properties.items():
            _walk(document, child, f"{path}.{name}", depth + 1, out, array=array)
        return
    out[path] = f"array<{kind}>" if array else kind


def _root(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's schema: OpenAPI 3's component carrying ``x-amazon-events-detail-type``
    (or named AWSEvent), or a Draft4 document itself."""
    openapi = document.get("openapi")
    if isinstance(openapi, str):
        if not openapi.startswith("3"):
            raise SchemaContentError(f"OpenAPI {openapi[:20]!r} is not version 3")
        components = (document.get("components") or {}).get("schemas")
        if not isinstance(components, Mapping) or not components:
            raise SchemaContentError("OpenAPI content without components.schemas")
        for node in components.values():
            if isinstance(node, Mapping) and "x-amazon-events-detail-type" in node:
                return node
        event = components.get("AWSEvent")
        if isinstance(event, Mapping):
            return event
        raise SchemaContentError("OpenAPI content without an AWSEvent schema")
    if "properties" in document or "$schema" in document:
        return document
    raise SchemaContentError("neither OpenAPI 3 nor JSONSchema content")


def schema_fields(content: str) -> SchemaFields:
    """A schema's content (JSON text) -> :class:`SchemaFields`; :class:`SchemaContentError`
    when it is not JSON, not OpenAPI 3 or JSONSchema, or its refs lead nowhere."""
    try:
        document = json.loads(content)
    except (TypeError, ValueError) as error:
        raise SchemaContentError(f"content is not JSON: {error}") from None
    if not isinstance(document, Mapping):
        raise SchemaContentError("content is not a JSON object")
    root = _root(document)
    source = root.get("x-amazon-events-source")
    detail_type = root.get("x-amazon-events-detail-type")
    properties = root.get("properties")
    if not isinstance(properties, Mapping):
        raise SchemaContentError("the event schema has no properties")
    fields: dict[str, str] = {}
    if "detail" in properties:
        try:
            _walk(document, properties["detail"], "detail", 0, fields)
        except RecursionError:
            raise SchemaContentError("nested too deep") from None
    return SchemaFields(str(source) if isinstance(source, str) else None,
                        str(detail_type) if isinstance(detail_type, str) else None, fields)


def fields_json(fields: Mapping[str, str]) -> str:
    """Fields as stored in ``event_schemas.fields``: a JSON object path -> type, sorted."""
    return json.dumps(dict(sorted(fields.items())))


def read_fields(text: Any) -> dict[str, str]:
    """``event_schemas.fields`` read back (empty for anything that is not a JSON object)."""
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# --- versions ---------------------------------------------------------------------------------


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def diff_fields(old: Mapping[str, str], new: Mapping[str, str]) -> list[FieldChange]:
    """What changed from ``old`` to ``new`` (consecutive versions), sorted by kind and path.

    A field gone from one path and one added at another path with the same last name and
    type is *moved* (paired in path order, one to one); the rest are added and removed.
    """
    removed = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    changes = [FieldChange("retyped", path, old[path], new[path])
               for path in sorted(set(old) & set(new)) if old[path] != new[path]]
    for gone in list(removed):
        target = next((path for path in added
                       if _leaf(path) == _leaf(gone) and new[path] == old[gone]), None)
        if target is not None:
            changes.append(FieldChange("moved", target, old[gone], new[target], gone))
            removed.remove(gone)
            added.remove(target)
    changes += [FieldChange("added", path, None, new[path]) for path in added]
    changes += [FieldChange("removed", path, old[path], None) for path in removed]
    return sorted(changes, key=lambda c: (c.kind, c.path))


# --- patterns ---------------------------------------------------------------------------------


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "any"


def _value_types(value: Any) -> set[str] | None:
    """Types one matcher matches (None: it tests absence, so a field gone never silences)."""
    if not isinstance(value, Mapping):
        return {_scalar_type(value)}
    found: set[str] = {"any"}
    if "exists" in value:
        return found if value.get("exists") else None
    if "numeric" in value:
        found = {"number"}
    elif _STRING_MATCHERS & set(value):
        found = {"string"}
    elif "anything-but" in value:
        inner = value["anything-but"]
        found = set()
        for item in inner if isinstance(inner, list) else [inner]:
            found |= _value_types(item) or set()
    return found or {"any"}


def _tests(node: Mapping[str, Any], path: str) -> Iterator[FieldTest]:
    for key, value in node.items():
        if not isinstance(key, str) or key.startswith("$"):  # $or: alternatives, not tested
            continue
        here = f"{path}.{key}"
        if isinstance(value, Mapping):
            yield from _tests(value, here)
        elif isinstance(value, list):
            types: set[str] = set()
            for matcher in value:
                found = _value_types(matcher)
                if found is None:
                    break
                types |= found
            else:
                if types:
                    yield FieldTest(here, frozenset(types))


def pattern_tests(pattern: Any) -> list[FieldTest]:
    """The fields of ``detail`` an event pattern (JSON text) tests, with the types they may
    have to match. Envelope keys (source, detail-type, account...) are EventBridge's and never
    drift; ``{"exists": false}`` tests absence and is left out; ``$or`` branches too."""
    document = parsed_object(pattern)
    detail = document.get("detail") if document else None
    return list(_tests(detail, "detail")) if isinstance(detail, Mapping) else []


def pattern_detail_types(pattern: Any) -> tuple[list[tuple[str, bool]], list[str] | None]:
    """(sources as (value, is_prefix), detail-types or None for "any") a pattern names."""
    document = parsed_object(pattern)
    if document is None:
        return [], []
    sources = [(s.value, s.prefix) for s in source_matchers(pattern)]
    values = document.get("detail-type")
    if values is None:
        return sources, None
    return sources, [v for v in (values if isinstance(values, list) else [values])
                     if isinstance(v, str)]


def _matches(named: tuple[list[tuple[str, bool]], list[str] | None], source: str,
             detail_type: str) -> bool:
    """Whether a pattern naming ``named`` (:func:`pattern_detail_types`) matches events of
    ``source`` and ``detail_type``."""
    sources, types = named
    if not sources and types is None:  # names neither: not a producer's flow
        return False
    source_ok = not sources or any(source.startswith(v) if prefix else source == v
                                   for v, prefix in sources)
    return source_ok and (types is None or detail_type in types)


def _base(kind: str) -> str:
    inner = kind[6:-1] if kind.startswith("array<") and kind.endswith(">") else kind
    return "number" if inner == "integer" else inner


def field_status(test: FieldTest, fields: Mapping[str, str]) -> tuple[str, str | None]:
    """('ok' | 'missing' | 'retyped', the field's type) of one test against one version."""
    kind = fields.get(test.path)
    if kind is None:
        if any(path.startswith(test.path + ".") for path in fields):
            return ("ok" if "any" in test.types else "retyped"), "object"
        return "missing", None
    if "any" in test.types or _base(kind) in test.types or _base(kind) == "any":
        return "ok", kind
    return "retyped", kind


# --- crossing rules and versions -------------------------------------------------------------


@dataclass(frozen=True)
class _Versions:
    """One registry's versions of one detail-type (a registry is per account and region)."""

    account_id: str
    region: str
    source: str
    detail_type: str
    #: (version, created, fields), oldest first.
    items: tuple[tuple[str, Any, dict[str, str]], ...]


def _version_key(version: Any) -> tuple[int, str]:
    text = str(version)
    return (int(text), text) if text.isdigit() else (10**9, text)


def schema_versions(schemas: pd.DataFrame) -> list[_Versions]:
    """``event_schemas`` rows grouped per registry (account, region) and (source,
    detail-type), versions in order."""
    if schemas.empty:
        return []
    grouped: dict[tuple[str, str, str, str], list[tuple[str, Any, dict[str, str]]]] = {}
    for row in schemas.to_dict("records"):
        source, detail_type = row.get("source"), row.get("detail_type")
        if not isinstance(source, str) or not isinstance(detail_type, str):
            continue
        grouped.setdefault((str(row["account_id"]), str(row["region"]), source, detail_type),
                           []).append(
            (str(row["version"]), row.get("version_created"), read_fields(row.get("fields"))))
    return [_Versions(a, r, s, d, tuple(sorted(items, key=lambda i: _version_key(i[0]))))
            for (a, r, s, d), items in sorted(grouped.items())]


def _choose(candidates: list[_Versions]) -> _Versions:
    """Of the registries that discovered one detail-type, the one whose newest version is the
    latest: a bus downstream of a rule that stopped matching never sees the new shape, so the
    rule's own account's registry may be the last to know."""
    return max(candidates, key=lambda c: (_created(c.items[-1][1]), c.account_id, c.region))


_EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")


def _created(value: Any) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return _EARLIEST
    if pd.isna(stamp):
        return _EARLIEST
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _crossings(rules: pd.DataFrame, schemas: pd.DataFrame
               ) -> Iterator[tuple[dict[Any, Any], _Versions, FieldTest]]:
    groups = schema_versions(schemas)
    if rules.empty or not groups:
        return
    by_key: dict[tuple[str, str], list[_Versions]] = {}
    for group in groups:
        by_key.setdefault((group.source, group.detail_type), []).append(group)
    chosen = {key: _choose(candidates) for key, candidates in by_key.items()}
    #: pattern text -> (its tests, the versions it is crossed with): rules share patterns
    crossed: dict[Any, tuple[list[FieldTest], list[_Versions]]] = {}
    for rule in rules.to_dict("records"):
        pattern = rule.get("event_pattern")
        if pattern not in crossed:
            tests = pattern_tests(pattern)
            named = pattern_detail_types(pattern) if tests else ([], [])
            crossed[pattern] = (tests, [versions for (source, detail_type), versions
                                        in chosen.items()
                                        if _matches(named, source, detail_type)])
        tests, matched = crossed[pattern]
        for versions in matched:
            for test in tests:
                yield rule, versions, test


def rule_dependencies(rules: pd.DataFrame, schemas: pd.DataFrame) -> pd.DataFrame:
    """Every (rule, detail-type it matches, field its pattern tests) with the field's type in
    the newest version and its status there (:func:`field_status`; ``never sent`` when no
    version ever had it). Columns: :data:`DEPENDENCY_COLUMNS`."""
    rows = []
    statuses: dict[tuple[int, FieldTest], tuple[str, str | None]] = {}
    for rule, versions, test in _crossings(rules, schemas):
        newest, _, fields = versions.items[-1]
        key = (id(versions), test)
        if key not in statuses:
            status, kind = field_status(test, fields)
            if status != "ok" and not any(field_status(test, f)[0] == "ok"
                                          for _, _, f in versions.items):
                status = "never sent"
            statuses[key] = (status, kind)
        status, kind = statuses[key]
        rows.append({"account_id": rule["account_id"], "region": rule["region"],
                     "bus": rule["bus"], "rule": rule["rule"], "source": versions.source,
                     "detail_type": versions.detail_type, "field": test.path,
                     "expected": test.expected, "newest_version": newest,
                     "newest_type": kind, "status": status})
    return pd.DataFrame(rows, columns=list(DEPENDENCY_COLUMNS))


def _break(test: FieldTest, versions: _Versions) -> dict[str, Any] | None:
    """The consecutive versions where ``test`` stopped holding, when the newest breaks it."""
    items = versions.items
    status, new_type = field_status(test, items[-1][2])
    if status == "ok":
        return None
    last_ok = max((i for i, item in enumerate(items) if field_status(test, item[2])[0] == "ok"),
                  default=None)
    if last_ok is None:  # never sent: a pattern mistake, not drift
        return None
    before, after = items[last_ok], items[last_ok + 1]
    changes = {c.old_path or c.path: c for c in diff_fields(before[2], after[2])}
    change = changes.get(test.path)
    kind = change.kind if change else ("retyped" if status == "retyped" else "removed")
    return {"change": kind, "moved_to": change.path if change and change.kind == "moved"
            else None, "expected": test.expected, "old_type": before[2].get(test.path),
            "new_type": change.new_type if change else new_type, "from_version": before[0],
            "to_version": after[0],
            "newest_version": items[-1][0], "to_version_created": after[1]}


def breaking_changes(rules: pd.DataFrame, schemas: pd.DataFrame,
                     producers: Mapping[str, Iterable[str]] | None = None) -> pd.DataFrame:
    """One row per (rule, detail-type, field) the newest version breaks (columns
    :data:`BREAK_COLUMNS`): ``change`` removed, moved (``moved_to``) or retyped, between
    ``from_version`` (the last that held) and ``to_version`` (the next). ``producers``:
    source -> producer account ids (joined with ','), when known.

    ``rules``: the ``rules`` dataset (account_id, region, bus, rule, event_pattern);
    ``schemas``: ``event_schemas`` (account_id, source, detail_type, version,
    version_created, fields)."""
    rows = []
    breaks: dict[tuple[int, FieldTest], dict[str, Any] | None] = {}
    for rule, versions, test in _crossings(rules, schemas):
        key = (id(versions), test)
        if key not in breaks:
            breaks[key] = _break(test, versions)
        found = breaks[key]
        if found is None:
            continue
        rows.append({"account_id": rule["account_id"], "region": rule["region"],
                     "bus": rule["bus"], "rule": rule["rule"], "source": versions.source,
                     "detail_type": versions.detail_type,
                     "schema_account_id": versions.account_id,
                     "schema_region": versions.region, "field": test.path, **found,
                     "producers": ",".join(sorted((producers or {}).get(versions.source, ())))})
    return pd.DataFrame(rows, columns=list(BREAK_COLUMNS))
