"""Schemas: which rules will go silent when a producer changes its event?

Top to bottom: how many detail-types EventBridge's schema discovery registered and how many
rules in scope their newest versions break; a red banner naming each broken rule, field, both
versions and the producer account; the breaking changes as a table with a CSV download; a
detail-type picker (broken ones first); its versions side by side (fields x versions, each
cell the field's type) with what changed between consecutive versions; the rules in scope that
depend on its fields, and whether each field still holds in the newest version. The crossing
is :mod:`orgscope.schema_drift`'s (docs/schemas.md).

A link ``?account=&region=&bus=&rule=&detail_type=`` (a schema_breaking_change alert's Slack
button) names its rule above the banner and preselects the detail-type that breaks it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import schemas_data as sd
from dashboard.context import AppContext, run_page
from orgscope.store import StoreError
from orgscope.untrusted import csv_bytes
from orgscope.untrusted import markdown as md

log = logging.getLogger(__name__)

DETAIL_TYPE_KEY = "schemas.detail_type"
DOWNLOAD_KEY = "schemas.breaks_csv"
#: The link (its parameters) whose detail-type was last preselected: a link selects once,
#: then the picker is the reader's.
LINKED_KEY = "schemas.linked"
BREAK_SHOWN = ["rule", "bus", "account", "source", "detail_type", "field", "change",
               "moved_to", "from_version", "to_version", "to_version_created", "producers"]
#: The dependencies' columns, in the order shown: the status first, the id last.
DEPENDENCY_SHOWN = ["status", "rule", "bus", "account", "region", "field", "expected",
                    "newest_type", "newest_version", "account_id"]
#: Column headings of the tables (the CSV download keeps the dataset's column names).
LABELS: dict[str, str] = {
    "rule": "Rule", "bus": "Bus", "account": "Account", "account_id": "Account ID",
    "region": "Region", "source": "Source", "detail_type": "Detail-type", "field": "Field",
    "change": "Change", "moved_to": "Moved to", "from_version": "Had it in",
    "to_version": "Changed in", "producers": "Producers", "expected": "Pattern expects",
    "newest_version": "Newest version", "newest_type": "Newest type", "status": "Status"}


def _name(names: Mapping[str, str], account_id: object) -> str:
    return names.get(str(account_id), str(account_id))


def _producers(names: Mapping[str, str], value: object) -> str:
    ids = [p for p in str(value or "").split(",") if p]
    return ", ".join(f"{_name(names, i)} ({i})" for i in ids) or "unknown"


def _banner(breaks: pd.DataFrame, names: Mapping[str, str]) -> None:
    lines = []
    for row in breaks.to_dict("records"):
        what = (f"moved {md(row['field'])} to {md(row['moved_to'])}"
                if row["change"] == "moved" else f"{md(row['change'])} {md(row['field'])}")
        lines.append(
            f"- **{md(row['rule'])}** (bus {md(row['bus'])}, "
            f"{md(_name(names, row['account_id']))}): {md(row['source'])} "
            f"“{md(row['detail_type'])}” version {md(row['to_version'])} {what} "
            f"(version {md(row['from_version'])} had it); producer "
            f"{md(_producers(names, row['producers']))}")
    rules = breaks[["account_id", "bus", "rule"]].drop_duplicates().shape[0]
    st.error(f"**{rules} rule{'s' if rules != 1 else ''} will go silent** as the producers' "
             "new versions roll out:\n" + "\n".join(lines), icon=":material/error:")


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Human headings for ``frame``'s columns (:data:`LABELS`)."""
    return {c: st.column_config.TextColumn(LABELS[c]) for c in frame.columns if c in LABELS}


def _breaks_table(breaks: pd.DataFrame, names: Mapping[str, str]) -> None:
    shown = breaks.assign(account=breaks["account_id"].map(lambda a: _name(names, a)),
                          producers=breaks["producers"].map(lambda p: _producers(names, p)))
    table = shown[BREAK_SHOWN].assign(moved_to=shown["moved_to"].fillna(sd.ABSENT))
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        **_columns(table), "to_version_created": st.column_config.DatetimeColumn(
            "Changed in, first seen", format="YYYY-MM-DD HH:mm z")})
    st.caption(f"Moved to {sd.ABSENT}: the field was removed or retyped, not moved. The CSV "
               "has every column under its dataset name (docs/datasets.md), empty where "
               "there is no value.")
    st.download_button("Download the breaking changes (CSV)", csv_bytes(shown),
                       file_name="schema-breaking-changes.csv", mime="text/csv",
                       key=DOWNLOAD_KEY)


def _label(types: pd.DataFrame, names: Mapping[str, str]) -> dict[str, str]:
    return {row["key"]: (f"{row['source']} · {row['detail_type']} — v{row['newest']} "
                         f"({_name(names, row['account_id'])} registry"
                         + (f", breaks {row['breaking']} rule"
                            f"{'s' if row['breaking'] != 1 else ''})" if row["breaking"]
                            else ")"))
            for row in types.to_dict("records")}


def _linked(result: sd.Drift, names: Mapping[str, str]) -> None:
    """A link naming a rule (a schema_breaking_change alert's button): say which rule, and
    preselect the detail-type that breaks it, once per link; a link that matches nothing
    gets a caption and the page as usual."""
    link = sd.rule_link(result, {name: st.query_params.get(name) for name in sd.LINK_PARAMS})
    if link is None:
        return
    account = link.get("account")
    where = ", ".join(md(part) for part in (
        link.get("bus") and f"bus {link.get('bus')}",
        account and f"{_name(names, account)} ({account})", link.get("region")) if part)
    rule = f"**{md(link.get('rule'))}**" + (f" ({where})" if where else "")
    detail_type = link.get("detail_type")
    if link.key is None:
        st.caption(f"The link names rule {rule}"
                   + (f" and detail-type “{md(detail_type)}”" if detail_type else "")
                   + ": no breaking change in the sidebar's scope matches it now (fixed "
                     "since, or outside the filters). The page as usual:")
        return
    _, _, source, broken = link.key.split("|", 3)
    st.info(f"Opened from the alert about rule {rule}: {md(source)} “{md(broken)}” is "
            "selected below.", icon=":material/link:")
    if st.session_state.get(LINKED_KEY) != link.params:
        st.session_state[LINKED_KEY] = link.params
        st.session_state[DETAIL_TYPE_KEY] = link.key


def _detail_type(result: sd.Drift, types: pd.DataFrame, names: Mapping[str, str]) -> None:
    labels = _label(types, names)
    key = st.selectbox("Detail-type", list(labels), format_func=lambda k: labels[k],
                       key=DETAIL_TYPE_KEY)
    if key is None:
        return
    st.subheader("Versions side by side")
    side = sd.side_by_side(result, key)
    st.dataframe(side, hide_index=True, width="stretch", column_config=_columns(side))
    st.caption(f"Each cell is the field's type in that version; {sd.ABSENT}: that version "
               "does not send the field.")
    for pair, words in sd.changes(result, key):
        st.markdown(f"**{md(pair)}**: " + "; ".join(md(w) for w in words))
    st.subheader("Rules that depend on its fields")
    deps = sd.dependencies_of(result, key, names)
    if deps.empty:
        st.caption("No rule in scope tests a field of this detail-type.")
        return
    st.dataframe(deps, hide_index=True, width="stretch", column_config=_columns(deps),
                 column_order=DEPENDENCY_SHOWN)
    st.caption(f"Newest type {sd.ABSENT}: the newest version does not send the field (status "
               "missing, or never sent when no version did).")


def render(ctx: AppContext) -> None:
    st.title("Schemas")
    st.caption("EventBridge schema discovery's versions of every detail-type, crossed with "
               "every rule's event pattern (docs/schemas.md).")
    filters = ctx.filters
    try:
        result = sd.load_drift(ctx.store_base, filters.account_ids, filters.teams,
                               filters.regions)
    except StoreError as error:
        log.error("schemas page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The store could not be read.** {error}", icon=":material/error:")
        return
    if result.schemas.empty:
        st.info("No discovered schemas yet. The `schemas` collector reads the accounts where "
                "EventBridge schema discovery is started on a bus; run "
                f"`{ctx.collect_command}`, or start a discoverer on a bus whose events you "
                "want checked against the rules.", icon=":material/schema:")
        return
    types = sd.detail_types(result)
    breaking_rules = result.breaks[["account_id", "bus", "rule"]].drop_duplicates()
    cols = st.columns(3)
    registries = types["account_id"].nunique()
    cols[0].metric("Detail-types discovered",
                   types[["source", "detail_type"]].drop_duplicates().shape[0], border=True,
                   help=f"Distinct (source, detail-type) pairs, in {registries} "
                        f"registr{'ies' if registries != 1 else 'y'} (one per account whose "
                        "buses have schema discovery on).")
    cols[1].metric("Rules crossed", result.dependencies[["account_id", "bus", "rule"]]
                   .drop_duplicates().shape[0], border=True,
                   help="Rules in scope whose pattern tests a field of a discovered "
                        "detail-type.")
    cols[2].metric("Rules that will go silent", len(breaking_rules), border=True)
    _linked(result, ctx.account_names)
    if len(breaking_rules):
        _banner(result.breaks, ctx.account_names)
        st.subheader("Breaking changes")
        _breaks_table(result.breaks, ctx.account_names)
    _detail_type(result, types, ctx.account_names)


def main() -> None:
    run_page(render)


if __name__ == "__main__":
    main()
