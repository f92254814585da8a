"""Schema drift on the Schemas page: each discovered detail-type's versions side by side, the
rules that depend on its fields, and the breaking changes (crossed by
:mod:`orgscope.schema_drift`, never again here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.collectors_data import in_scope, scoped_accounts
from dashboard.data import CACHE_TTL_S, account_choices, open_store
from dashboard.filters import Filters
from orgscope.schema_drift import (
    breaking_changes,
    diff_fields,
    rule_dependencies,
    schema_versions,
)
from orgscope.schema_io import producer_map, read_rules, read_schemas
from orgscope.store import Store

#: What a cell says where there is no value: a version without the field (side by side), a
#: newest version without the field (dependencies), a change that moved nothing (breaks). An
#: em dash rather than "absent": it is the same mark in every table, and a type column of
#: words (string, number, absent) would read as if "absent" were a type.
ABSENT = "—"
#: Query parameters the page reads: a schema_breaking_change alert's Slack button
#: (alerts/slack.py) writes the rule's identity and the detail-type that breaks it.
LINK_PARAMS = ("account", "region", "bus", "rule", "detail_type")
DETAIL_TYPE_COLUMNS = ["key", "account_id", "region", "source", "detail_type", "versions", "newest",
                       "newest_created", "breaking"]


@dataclass(frozen=True)
class Drift:
    """Everything the page shows, for the rules in the sidebar's scope."""

    schemas: pd.DataFrame
    dependencies: pd.DataFrame
    breaks: pd.DataFrame


def detail_type_key(account_id: str, region: str, source: str, detail_type: str) -> str:
    """The picker's key of one registry's detail-type."""
    return f"{account_id}|{region}|{source}|{detail_type}"


def _group(result: Drift, key: str) -> Any:
    return next((g for g in schema_versions(result.schemas)
                 if detail_type_key(g.account_id, g.region, g.source, g.detail_type) == key),
                None)


@dataclass(frozen=True)
class RuleLink:
    """What a link to the page names (values as given, untrusted) and the detail-type key it
    preselects: the first the rule's breaking changes name (the link's ``detail_type`` among
    them when it names one); None when no breaking change in scope matches."""

    params: tuple[tuple[str, str], ...]
    key: str | None

    def get(self, name: str) -> str | None:
        return dict(self.params).get(name)


def rule_link(result: Drift, params: Mapping[str, str | None]) -> RuleLink | None:
    """The link of ``params`` (:data:`LINK_PARAMS`), None when it names no rule. The rule's
    breaking changes are matched on every part the link gives (account, region, bus, rule);
    a ``detail_type`` the rule's breaks do not name matches nothing."""
    given = tuple((name, str(params[name])) for name in LINK_PARAMS if params.get(name))
    link = RuleLink(given, None)
    if link.get("rule") is None:
        return None
    breaks = result.breaks
    matched = breaks[breaks["rule"] == link.get("rule")]
    for name, column in (("account", "account_id"), ("region", "region"), ("bus", "bus"),
                         ("detail_type", "detail_type")):
        if link.get(name) is not None:
            matched = matched[matched[column] == link.get(name)]
    if matched.empty:
        return link
    first = matched.sort_values(["detail_type", "field"]).iloc[0]
    return RuleLink(given, detail_type_key(str(first["schema_account_id"]),
                                           str(first["schema_region"]), str(first["source"]),
                                           str(first["detail_type"])))


def drift(store: Store, filters: Filters) -> Drift:
    """Latest schemas (every registry: producers are not filtered), and the dependencies and
    breaking changes of the rules in scope."""
    schemas = read_schemas(store)
    if schemas.empty:
        return Drift(schemas, rule_dependencies(pd.DataFrame(), schemas),
                     breaking_changes(pd.DataFrame(), schemas))
    choices = account_choices(store)
    rules = in_scope(read_rules(store), scoped_accounts(choices, filters), filters.regions)
    producers = producer_map(schemas["source"], choices)
    return Drift(schemas, rule_dependencies(rules, schemas),
                 breaking_changes(rules, schemas, producers))


def detail_types(result: Drift) -> pd.DataFrame:
    """One row per (registry account, source, detail-type): versions, the newest and when it
    was first seen, and how many rules in scope its newest version breaks; those with breaking
    changes first."""
    rows = []
    for group in schema_versions(result.schemas):
        newest, created, _ = group.items[-1]
        breaking = result.breaks[(result.breaks["schema_account_id"] == group.account_id)
                                 & (result.breaks["schema_region"] == group.region)
                                 & (result.breaks["source"] == group.source)
                                 & (result.breaks["detail_type"] == group.detail_type)]
        rows.append({"key": detail_type_key(group.account_id, group.region, group.source,
                                            group.detail_type),
                     "account_id": group.account_id, "region": group.region, "source": group.source,
                     "detail_type": group.detail_type, "versions": len(group.items),
                     "newest": newest, "newest_created": created,
                     "breaking": int(breaking[["account_id", "bus", "rule"]]
                                     .drop_duplicates().shape[0])})
    frame = pd.DataFrame(rows, columns=DETAIL_TYPE_COLUMNS)
    return frame.sort_values(["breaking", "source", "detail_type", "account_id"],
                             ascending=[False, True, True, True], ignore_index=True)


def side_by_side(result: Drift, key: str) -> pd.DataFrame:
    """The fields of one detail-type (rows) in each of its versions (columns ``v1``...):
    the field's type, or :data:`ABSENT`. Fields of the newest version first."""
    group = _group(result, key)
    if group is None:
        return pd.DataFrame(columns=["field"])
    paths: list[str] = []
    for _, _, fields in reversed(group.items):
        paths += [p for p in sorted(fields) if p not in paths]
    columns = {f"v{version}": [fields.get(p, ABSENT) for p in paths]
               for version, _, fields in group.items}
    return pd.DataFrame({"field": paths, **columns})


def changes(result: Drift, key: str) -> list[tuple[str, list[str]]]:
    """Per consecutive pair of versions ('v2 → v3'), what changed, in words."""
    group = _group(result, key)
    if group is None:
        return []
    out = []
    for before, after in zip(group.items, group.items[1:], strict=False):
        words = []
        for change in diff_fields(before[2], after[2]):
            if change.kind == "moved":
                words.append(f"moved {change.old_path} → {change.path}")
            elif change.kind == "retyped":
                words.append(f"retyped {change.path}: {change.old_type} → {change.new_type}")
            else:
                words.append(f"{change.kind} {change.path}")
        out.append((f"v{before[0]} → v{after[0]}", words or ["no field changed"]))
    return out


def dependencies_of(result: Drift, key: str, names: Mapping[str, str]) -> pd.DataFrame:
    """The rules in scope that depend on this detail-type's fields, with the field's type in
    its newest version and whether it still holds there (account names from ``names``)."""
    _, _, source, detail_type = key.split("|", 3)
    deps = result.dependencies
    rows = deps[(deps["source"] == source) & (deps["detail_type"] == detail_type)].copy()
    rows.insert(0, "account", rows["account_id"].map(lambda a: names.get(str(a), str(a))))
    rows["newest_type"] = rows["newest_type"].fillna(ABSENT)
    return rows.drop(columns=["source", "detail_type"]).reset_index(drop=True)


# --- cached wrappers ------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_drift(store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
               regions: tuple[str, ...]) -> Drift:
    return drift(open_store(store_base), Filters(account_ids=account_ids, teams=teams,
                                                 regions=regions))
