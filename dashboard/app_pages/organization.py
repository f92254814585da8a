"""Organization: is every account readable, and what does its EventBridge inventory look like?

The first page an on-call SRE opens. Top to bottom: headline numbers; a red banner for
accounts orgscope could not read (with AWS's reason), kept apart from "no collection has run
yet"; the accounts table; rules per account by state; the rule inventory with search and CSV.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.context import AppContext, run_page
from orgscope.access import ACCESS_MEANINGS
from orgscope.durations import duration_text
from orgscope.store import StoreError
from orgscope.untrusted import csv_bytes
from orgscope.untrusted import markdown as md
from orgscope.untrusted import plotly_text as pt

log = logging.getLogger(__name__)

SEARCH_KEY = "organization.rules_search"
DOWNLOAD_KEY = "organization.rules_csv"
ONLY_DISABLED_KEY = "organization.only_disabled"

#: The collection is "stale" after this many missed inventory intervals.
STALE_INTERVALS = 2


def _no_collection_yet(ctx: AppContext) -> None:
    st.info(
        "**No collection has run yet.** The store is empty, so there is nothing to show — "
        "this is not a failure to read any account.\n\n"
        f"Store: `{ctx.store_base}`\n\n"
        "Run one collection cycle now, with the same config as this dashboard:\n\n"
        f"```\n{ctx.collect_command}\n```\n\n"
        "then press **Refresh** in the sidebar.",
        icon=":material/hourglass_empty:",
    )


def _headline(ctx: AppContext, overview: pd.DataFrame, last: datetime | None) -> None:
    now = datetime.now(UTC)
    unreachable = int((~overview["reachable"]).sum())
    partial = int((overview["access"] == "partial").sum())
    enabled = int(overview["rules_enabled"].fillna(0).sum())
    disabled = int(overview["rules_disabled"].fillna(0).sum())
    cols = st.columns(6)
    cols[0].metric("Accounts watched", len(overview), border=True)
    cols[1].metric(
        "Readable",
        len(overview) - unreachable,
        delta=f"{partial} with gaps" if partial else None,
        delta_color="inverse" if partial else "off",
        delta_arrow="off",
        border=True,
        help="Accounts orgscope can read. 'With gaps': the read role refuses some actions, "
        "and the collectors that need them fail there (the table names them).",
    )
    cols[2].metric(
        "Could not read",
        unreachable,
        delta="unreachable or no-read" if unreachable else None,
        delta_color="inverse" if unreachable else "off",
        delta_arrow="off",
        border=True,
        help="Unreachable: the read role could not be assumed. No-read: it was assumed but "
        "every read was refused.",
    )
    cols[3].metric("Rules enabled", enabled, border=True)
    cols[4].metric(
        "Rules disabled",
        disabled,
        delta="check these" if disabled else None,
        delta_color="inverse" if disabled else "off",
        delta_arrow="off",
        border=True,
        help="A disabled rule delivers nothing. See the inventory below.",
    )
    if last is None:
        cols[5].metric("Last collection", "never", border=True)
        return
    age_s = (now - last).total_seconds()
    stale = age_s > STALE_INTERVALS * ctx.inventory_interval_s
    cols[5].metric(
        "Last collection",
        f"{duration_text(age_s)} ago",
        delta="stale" if stale else None,
        delta_color="inverse" if stale else "off",
        delta_arrow="off",
        border=True,
        help=f"Newest collection cycle: {last:%Y-%m-%d %H:%M:%S} UTC. Stale after "
        f"{STALE_INTERVALS} missed inventory intervals "
        f"({duration_text(STALE_INTERVALS * ctx.inventory_interval_s)}).",
    )


def _unreachable_banner(overview: pd.DataFrame) -> None:
    down = overview[~overview["reachable"]]
    if down.empty:
        return
    lines = []
    for row in down.to_dict("records"):
        since, inventory_at = row["unreachable_since"], row["inventory_at"]
        when = f" — since {since:%Y-%m-%d %H:%M} UTC" if pd.notna(since) else ""
        rules = (
            f"; rule inventory below is from {inventory_at:%Y-%m-%d %H:%M} UTC"
            if pd.notna(inventory_at)
            else "; no rule inventory was ever read"
        )
        reason = row["reason"] if isinstance(row["reason"], str) else "no reason recorded"
        lines.append(
            f"- **{md(row['name'])}** ({md(row['account_id'])}, team "
            f"{md(row['team'])}, {md(row['access'])}): {md(reason, 2000)}{when}{rules}"
        )
    count = len(down)
    st.error(
        f"**orgscope could not read {count} account{'s' if count != 1 else ''}** at the last "
        "check. Its data is missing or stale, not empty.\n\n" + "\n".join(lines),
        icon=":material/block:",
    )


def _gaps_banner(overview: pd.DataFrame) -> None:
    """Accounts readable with gaps: which actions the read role refuses, for which collector."""
    gaps = overview[overview["access"] == "partial"]
    if gaps.empty:
        return
    lines = [f"- **{md(row['name'])}** ({md(row['account_id'])}): refused "
             + ", ".join(md(item) for item in row["denied"])
             for row in gaps.to_dict("records")]
    st.warning(
        f"**{len(gaps)} account{'s' if len(gaps) != 1 else ''} readable with gaps.** The read "
        "role there lacks permissions the collectors named need; those collectors fail in it "
        "and the rest of its data is current. Deploy the current "
        "`orgscope/iam/orgscope-read-role.yaml` (member accounts) or "
        "`orgscope/iam/orgscope-management-read-role.yaml` (the management account; "
        "docs/iam.md).\n\n" + "\n".join(lines),
        icon=":material/lock:",
    )


def _table_height(rows: int, cap: int = 640) -> int:
    """Pixels for a st.dataframe that shows ``rows`` rows without scrolling, up to ``cap``."""
    return min(cap, 35 * (rows + 1) + 3)


def _accounts_table(overview: pd.DataFrame, time_range: str) -> None:
    table = overview.assign(
        status=overview["access"].fillna("readable"),
        refused=overview["denied"].map(
            lambda items: ", ".join(items) if isinstance(items, list) else ""),
        reason=overview["reason"].fillna(""),
    )
    st.dataframe(
        table.style.map(_status_style, subset=["status"]),
        hide_index=True,
        height=_table_height(len(table)),
        column_order=[
            "name", "account_id", "team", "status", "refused", "rules", "rules_disabled",
            "inventory_at", "checked_at", "unreachable_in_range", "failed_runs_in_range",
            "environment", "reason",
        ],
        column_config={
            "name": st.column_config.TextColumn("Account", pinned=True),
            "account_id": st.column_config.TextColumn("Id"),
            "team": st.column_config.TextColumn("Team"),
            "status": st.column_config.TextColumn(
                "Access", help="; ".join(f"{state}: {meaning}"
                                         for state, meaning in ACCESS_MEANINGS.items())),
            "refused": st.column_config.TextColumn(
                "Refused actions", width="medium",
                help="IAM actions the read role refused at the latest runs, with the "
                "collector that needs each."),
            "rules": st.column_config.NumberColumn(
                "Rules", format="%d", help="Latest inventory. Empty: never read (no data)."
            ),
            "rules_disabled": st.column_config.NumberColumn("Disabled", format="%d"),
            "inventory_at": st.column_config.DatetimeColumn(
                "Inventory read", format="YYYY-MM-DD HH:mm", timezone="UTC",
                help="Newest successful inventory run (UTC). Older than 'Last checked' means "
                "the rules shown are stale.",
            ),
            "checked_at": st.column_config.DatetimeColumn(
                "Last checked", format="YYYY-MM-DD HH:mm", timezone="UTC"
            ),
            "unreachable_in_range": st.column_config.NumberColumn(
                f"Unreachable checks ({time_range})", format="%d"
            ),
            "failed_runs_in_range": st.column_config.NumberColumn(
                f"Failed runs ({time_range})", format="%d"
            ),
            "environment": st.column_config.TextColumn("Env"),
            "reason": st.column_config.TextColumn("Reason", width="large"),
        },
    )


def _status_style(status: object) -> str:
    if status in ("unreachable", "no-read"):
        return f"color: {data.STATE_COLOURS['DISABLED']}; font-weight: 600"
    if status == "partial":
        return "color: #b7791f; font-weight: 600"
    return ""


def _rules_chart(overview: pd.DataFrame) -> None:
    stale = set(overview.loc[~overview["reachable"], "name"])
    counts = data.rule_state_counts(overview)
    if counts.empty:
        st.caption("No rule inventory has been read for these accounts yet.")
        return
    counts["label"] = counts["account"].map(
        lambda name: f"{name} (stale)" if name in stale else name
    )
    order = counts.groupby("label")["rules"].sum().sort_values(ascending=True).index.tolist()
    colours = data.state_colours(counts["state"].unique().tolist())
    # bars at positions with escaped tick labels: an account name is never Plotly HTML
    labels = [pt(label) for label in order]
    figure = go.Figure()
    for state in ("ENABLED", "DISABLED", "OTHER"):
        part = counts[counts["state"] == state].set_index("label").reindex(order)
        if part["rules"].fillna(0).sum() == 0 and state != "ENABLED":
            continue
        figure.add_trace(
            go.Bar(
                name=pt(state.lower()),
                y=list(range(len(order))),
                x=part["rules"].fillna(0),
                orientation="h",
                marker_color=colours.get(state, data.OTHER_STATE_COLOUR),
                customdata=labels,
                hovertemplate="%{customdata}: %{x} " + pt(state.lower()) + "<extra></extra>",
            )
        )
    figure.update_layout(
        barmode="stack",
        height=max(220, 24 * len(order) + 80),
        margin={"l": 0, "r": 10, "t": 30, "b": 30},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0,
                "traceorder": "normal"},
        xaxis_title="rules (latest inventory)",
        yaxis={"tickvals": list(range(len(order))), "ticktext": labels},
    )
    st.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
    if stale:
        st.caption("(stale): the account could not be read; its bar is the last inventory read.")


def _disabled_rules(ctx: AppContext) -> None:
    filters = ctx.filters
    rules = data.load_rules_inventory(
        ctx.store_base, filters.account_ids, filters.teams, filters.regions, ""
    )
    disabled = rules[rules["state"] == "DISABLED"]
    if disabled.empty:
        st.success("No disabled rules in scope.", icon=":material/check_circle:")
        return
    st.dataframe(
        disabled,
        hide_index=True,
        height=_table_height(len(disabled), cap=420),
        column_order=["account", "region", "bus", "rule", "description"],
        column_config={
            "account": st.column_config.TextColumn("Account"),
            "region": st.column_config.TextColumn("Region"),
            "bus": st.column_config.TextColumn("Bus"),
            "rule": st.column_config.TextColumn("Rule"),
            "description": st.column_config.TextColumn("Description"),
        },
    )


def _rules_inventory(ctx: AppContext) -> None:
    filters = ctx.filters
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    search = left.text_input(
        "Search rules",
        key=SEARCH_KEY,
        placeholder="rule, bus, account, target ARN, pattern text…",
    )
    only_disabled = right.toggle("Only disabled rules", key=ONLY_DISABLED_KEY)
    rules = data.load_rules_inventory(
        ctx.store_base, filters.account_ids, filters.teams, filters.regions, search
    )
    if only_disabled:
        rules = rules[rules["state"] == "DISABLED"]
    if rules.empty:
        st.caption("No rules match." if search or only_disabled else "No rules in scope.")
        return
    disabled = int((rules["state"] == "DISABLED").sum())
    st.caption(f"{len(rules)} rule{'s' if len(rules) != 1 else ''}, {disabled} disabled")
    st.dataframe(
        rules.style.map(_state_style, subset=["state"]),
        hide_index=True,
        height=_table_height(len(rules), cap=560),
        column_order=[
            "account", "region", "bus", "rule", "state", "target_count", "targets",
            "dlq_arns", "description", "collected_at",
        ],
        column_config={
            "account": st.column_config.TextColumn("Account", pinned=True),
            "region": st.column_config.TextColumn("Region"),
            "bus": st.column_config.TextColumn("Bus"),
            "rule": st.column_config.TextColumn("Rule"),
            "state": st.column_config.TextColumn("State"),
            "target_count": st.column_config.NumberColumn("Targets", format="%d"),
            "targets": st.column_config.ListColumn("Target ARNs", width="large"),
            "dlq_arns": st.column_config.ListColumn("DLQs", width="medium"),
            "description": st.column_config.TextColumn("Description"),
            "collected_at": st.column_config.DatetimeColumn(
                "Collected", format="YYYY-MM-DD HH:mm", timezone="UTC"
            ),
        },
    )
    export = rules.drop(columns=["targets", "dlq_arns"]).assign(
        targets=rules["targets"].map(" ".join), dlq_arns=rules["dlq_arns"].map(" ".join)
    )
    st.download_button(
        "Download CSV",
        data=csv_bytes(export),
        file_name=f"orgscope-rules-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv",
        mime="text/csv",
        key=DOWNLOAD_KEY,
        icon=":material/download:",
        on_click="ignore",
    )


def _state_style(state: object) -> str:
    if state == "DISABLED":
        return f"color: {data.STATE_COLOURS['DISABLED']}; font-weight: 600"
    if state == "ENABLED":
        return f"color: {data.STATE_COLOURS['ENABLED']}"
    return ""


def render(ctx: AppContext) -> None:
    filters = ctx.filters
    st.title(f"{ctx.organization} organization")
    st.caption(
        f"Accounts and EventBridge rule inventory · {filters.describe()} · latest snapshot; "
        "the time range applies to check and run history."
    )
    try:
        last = data.load_last_collection(ctx.store_base)
        overview = data.load_accounts_overview(
            ctx.store_base, filters.time_range, filters.account_ids, filters.teams,
            filters.regions,
        )
    except StoreError as error:
        log.error("organization page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The store could not be read.** {error}", icon=":material/error:")
        return
    if last is None:
        _no_collection_yet(ctx)
        return
    if overview.empty:
        st.warning(
            "No accounts match the filters in the sidebar." if filters.narrowed
            else "The store has collection runs but no account checks yet.",
            icon=":material/filter_alt_off:",
        )
        return
    _headline(ctx, overview, last)
    _unreachable_banner(overview)
    _gaps_banner(overview)
    st.subheader("Accounts")
    _accounts_table(overview, filters.time_range)
    chart, disabled = st.columns(2, gap="large")
    with chart:
        st.subheader("Rules per account")
        _rules_chart(overview)
    with disabled:
        st.subheader("Disabled rules")
        try:
            _disabled_rules(ctx)
        except StoreError as error:
            log.error("organization page: rule inventory unreadable: %s", error)
            st.error(f"**The rule inventory could not be read.** {error}")
    st.subheader("Rule inventory")
    try:
        _rules_inventory(ctx)
    except StoreError as error:
        log.error("organization page: rule inventory unreadable: %s", error)
        st.error(f"**The rule inventory could not be read.** {error}", icon=":material/error:")


def main() -> None:
    run_page(render)


if __name__ == "__main__":
    main()
