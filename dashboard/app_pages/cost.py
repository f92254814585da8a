"""Cost: the monthly finance review, per team.

Top to bottom: the month picker; the month's totals (with the change on the previous month,
the untagged share and, for the month in progress, the forecast); the per-team table with
budgets; the top movers and what explains each; the daily trend with the forecast band; the
breakdowns by account, service, untagged cost, overhead category and anomalies; the method
notes; the unit cost per event flow (per team, risers, daily chart, per flow, unallocated);
the costliest resources (a data export's resource lines); the exports; and, for a closed
month, what AWS restated since.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import cost_data
from dashboard.context import AppContext, run_page
from dashboard.flow_cost_data import FlowCost
from orgscope.cost.attribution import month_of
from orgscope.cost.forecast import Calibration
from orgscope.cost.review import month_before, month_end
from orgscope.store import StoreError
from orgscope.untrusted import markdown as md
from orgscope.untrusted import plotly_text as pt

log = logging.getLogger(__name__)

MONTH_KEY = "cost.month"
XLSX_KEY = "cost.xlsx"
CSV_KEY = "cost.csv"
RESOURCES_CSV_KEY = "cost.resources_csv"
#: One day on a Plotly date axis (milliseconds).
DAY_MS = 86_400_000


def _money(label: str, currency: str) -> Any:
    return st.column_config.NumberColumn(f"{label} ({currency})", format="%,.2f")


def _pct(label: str) -> Any:
    return st.column_config.NumberColumn(label, format="%+.1f %%")


def _table(frame: pd.DataFrame, currency: str, labels: dict[str, str],
           money: tuple[str, ...] = ("amount", "previous", "change")) -> None:
    config: dict[str, Any] = {}
    for column in frame.columns:
        if column in money:
            config[column] = _money(labels.get(column, column.capitalize()), currency)
        elif column == "change_pct":
            config[column] = _pct("Change %")
        elif column == "share_pct":
            config[column] = st.column_config.NumberColumn("Share", format="%.1f %%")
        elif column in labels:
            config[column] = st.column_config.TextColumn(labels[column])
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config,
                 height=min(640, 35 * (len(frame) + 1) + 3))


def _headline(rv: cost_data.CostReview) -> None:
    cols = st.columns(4)
    change = rv.total - rv.previous
    cols[0].metric(
        f"Total {rv.month} ({rv.currency})", f"{rv.total:,.2f}",
        delta=f"{change:+,.2f} vs previous month" + ("" if rv.complete else " (same days)"),
        delta_color="inverse", border=True,
        help="Sum of every cost_daily line of the month, shared accounts included.")
    share = rv.untagged / rv.total * 100 if rv.total else 0.0
    cols[1].metric("Untagged", f"{rv.untagged:,.2f}", delta=f"{share:.1f} % of the total",
                   delta_color="off", delta_arrow="off", border=True,
                   help="Cost without the Team tag; attributed to its account's team "
                        "(see Method notes), listed under Untagged below.")
    if not rv.complete and len(rv.forecast):
        total = float(rv.forecast["forecast"].sum())
        low, high = float(rv.forecast["low"].sum()), float(rv.forecast["high"].sum())
        cols[2].metric("Forecast month end", f"{total:,.2f}",
                       delta=f"90 %: {low:,.0f} - {high:,.0f}", delta_color="off",
                       delta_arrow="off", border=True,
                       help=f"Data through {rv.through}; see the per-team forecast below.")
    else:
        closed = rv.closed_at
        cols[2].metric("Month", "closed" if closed else "complete", border=True,
                       delta=f"on {closed:%Y-%m-%d}" if closed else "not closed yet",
                       delta_color="off", delta_arrow="off")
    cols[3].metric("Anomalies", len(rv.anomalies), border=True,
                   delta="see below" if len(rv.anomalies) else None, delta_color="inverse",
                   delta_arrow="off")


def _teams(rv: cost_data.CostReview) -> None:
    st.subheader("Per team")
    table = rv.teams
    if not rv.complete and len(rv.forecast):
        table = table.merge(rv.forecast[["team", "forecast", "low", "high", "status"]],
                            on="team", how="left")
    else:
        status = ["over" if pd.notna(b) and a > b else "within" if pd.notna(b) else ""
                  for a, b in zip(table["amount"], table["budget"], strict=True)]
        table = table.assign(status=status)
    _table(table, rv.currency,
           {"team": "Team", "amount": "Cost", "tagged": "Tagged", "untagged": "Untagged",
            "shared": "Shared accounts", "previous": "Previous month", "change": "Change",
            "budget": "Budget", "forecast": "Forecast", "low": "Low (90 %)",
            "high": "High (90 %)", "status": "Status"},
           money=("amount", "tagged", "untagged", "shared", "previous", "change", "budget",
                  "forecast", "low", "high"))
    budget = ("Budget: the forecast against the team's monthly budget ('at risk': the "
              "interval reaches it; 'learning': under two weeks of cost history, not judged). "
              + _calibration_text(rv.calibration)) if not rv.complete else \
        "Budget: the month's cost against the team's monthly budget."
    st.caption(f"Total {rv.total:,.2f} {rv.currency}. {budget}")


def _calibration_text(calibration: Calibration) -> str:
    if not calibration.samples:
        return "The interval is not calibrated yet (fewer than two stored months)."
    held = f", held {calibration.coverage:.0%} out of sample" \
        if calibration.coverage is not None else ""
    return (f"The 90 % interval is calibrated on {calibration.months} stored months "
            f"({calibration.samples} backtest forecasts{held}).")


def _movers(rv: cost_data.CostReview) -> None:
    st.subheader("Top movers")
    if rv.movers.empty:
        st.caption("No previous month to compare with.")
        return
    lines = []
    for row in rv.movers.to_dict("records"):
        lines.append(
            f"- **{md(row['team'])}** {row['change']:+,.2f} {rv.currency} "
            f"({row['previous']:,.2f} → {row['amount']:,.2f}): mostly **{md(row['service'])}**"
            f" / {md(row['usage_type'])} in {md(row['account'])} "
            f"({row['line_change']:+,.2f})")
    st.markdown("\n".join(lines))


def _trend(rv: cost_data.CostReview) -> None:
    st.subheader("Daily cost")
    figure = go.Figure()
    for team, rows in rv.daily.groupby("team"):
        figure.add_bar(x=rows["date"], y=rows["amount"], name=pt(team))
    if len(rv.band):
        figure.add_scatter(x=rv.band["date"], y=rv.band["high"], mode="lines",
                           line={"width": 0}, showlegend=False, hoverinfo="skip")
        figure.add_scatter(x=rv.band["date"], y=rv.band["low"], mode="lines",
                           line={"width": 0}, fill="tonexty", fillcolor="rgba(80,80,80,0.2)",
                           name="forecast (90 %)")
        figure.add_scatter(x=rv.band["date"], y=rv.band["expected"], mode="lines",
                           line={"dash": "dash", "color": "#555"}, name="expected day")
    figure.update_layout(barmode="stack", height=380, margin={"t": 10, "b": 10},
                         yaxis_title=rv.currency, legend={"orientation": "h"})
    st.plotly_chart(figure, width="stretch")


def _details(rv: cost_data.CostReview) -> None:
    tabs = st.tabs(["By account", "By service", "Untagged", "Overhead categories",
                    "Anomalies", "Method notes"])
    with tabs[0]:
        _table(rv.accounts, rv.currency, {"account": "Account", "account_id": "Account id"})
    with tabs[1]:
        _table(rv.services, rv.currency, {"service": "Service"})
    with tabs[2]:
        share = rv.untagged / rv.total * 100 if rv.total else 0.0
        st.caption(f"{rv.untagged:,.2f} {rv.currency} ({share:.1f} %) carried no Team tag.")
        _table(rv.untagged_lines, rv.currency, {"account": "Account", "team": "Charged to"},
               money=("amount",))
    with tabs[3]:
        if rv.overhead.empty:
            st.caption("No overhead-category cost this month.")
        else:
            pivot = rv.overhead.pivot_table(index="team", columns="category",
                                            values="amount", aggfunc="sum", fill_value=0.0)
            pivot["total"] = pivot.sum(axis=1)
            _table(pivot.reset_index(), rv.currency, {"team": "Team"},
                   money=(*pivot.columns,))
        if len(rv.api_spend):
            st.caption("orgscope's own API spend this month (from its runs):")
            _table(rv.api_spend.drop(columns=["month"]), "USD", {"api": "API"},
                   money=("amount",))
    with tabs[4]:
        if rv.anomalies.empty:
            st.caption("No anomalies this month.")
        else:
            _table(rv.anomalies[["date", "team", "service", "usage_type", "account",
                                 "amount", "baseline", "excess", "z"]], rv.currency,
                   {"service": "Service", "usage_type": "Usage type", "account": "Account"},
                   money=("amount", "baseline", "excess"))
    with tabs[5]:
        st.dataframe(rv.method_notes, hide_index=True, width="stretch")


def _unit(label: str, currency: str, help_text: str | None = None) -> Any:
    return st.column_config.NumberColumn(f"{label} ({currency} per million events)",
                                         format="%,.4f", help=help_text)


def _day(day: date | None) -> str:
    return f"{day:%Y-%m-%d}" if day is not None else "no day yet"


def _period(view: FlowCost, today: date) -> str:
    """'2026-12, month to date (through 2026-12-07)' while the month is in progress."""
    if view.month == month_of(today) and view.through is not None:
        return f"{view.month}, month to date (through {view.through:%Y-%m-%d})"
    return view.month


def _flows(rv: cost_data.CostReview, today: date) -> None:
    st.subheader("Unit cost per event flow")
    view = rv.flows
    newest = rv.newest_flows
    if newest is not None:
        # a finance reader opens last month; flows may start later (a new install, the demo)
        lines = "" if view is None or view.empty else (
            f" Its EventBridge and target lines "
            f"({float(view.unallocated['amount'].sum()):,.2f} {rv.currency}) stay "
            "unallocated (the exports list them).")
        when = (f"flow metrics start on {_day(newest.first_day)}" if newest.month > rv.month
                else f"the newest flow metrics are of {newest.month}")
        st.info(f"**No flow delivered events in {rv.month}**: {when}.{lines} Below: "
                f"**{_period(newest, today)}**, the newest month with flow cost.",
                icon=":material/info:")
        view = newest
    elif view is None or view.empty:
        st.caption("No flow cost for this month yet: the flow_cost step splits EventBridge, "
                   "SQS, Lambda and Step Functions lines over the rules' targets once cost "
                   "and rule metrics are both stored (docs/cost.md).")
        return
    unallocated = float(view.unallocated["amount"].sum())
    if view.flows.empty:
        st.caption(f"No flow delivered events in {rv.month} as far as the stored rule metrics "
                   "say (they start when orgscope started collecting them): its EventBridge "
                   "and target lines are all unallocated below. A later month may have them.")
    cols = st.columns(3)
    cols[0].metric(f"Carried by flows ({rv.currency})", f"{view.allocated:,.2f}", border=True,
                   help="EventBridge and target lines charged to the flows: by usage (the "
                        "flow's events at the line's own price per event) where the bill "
                        "counts events or requests, else split by events delivered (see "
                        "Method notes).")
    cols[1].metric(f"Unallocated ({rv.currency})", f"{unallocated:,.2f}", border=True,
                   help="Usage beyond what the inventory's flows delivered (other callers, "
                        "events no rule matched), lines with no events to split them by that "
                        "day, or no flow that sends them: kept as their own lines, never "
                        "dropped.")
    cols[2].metric("Flows with events", len(view.flows), border=True)
    if view.flows.empty:  # no table, riser or chart to draw: only the lines
        _unallocated(view, rv.currency)
        return
    units = {"per_million": "Now", "per_million_before": "Previous month",
             "end_to_end": "End to end", "upstream_per_million": "Forwarding hops"}
    config: dict[str, Any] = {c: _unit(label, rv.currency) for c, label in units.items()}
    config["end_to_end"] = _unit(
        "End to end", rv.currency, "A target's unit cost plus the forwarding hops before it; "
        "empty for a team whose flows all end at another account's bus (the hop is counted "
        "in the end to end of the team whose target it reaches).")
    config.update({"amount": _money("Cost", rv.currency),
                   "eventbridge": _money("EventBridge", rv.currency),
                   "target": _money("Target", rv.currency), "change_pct": _pct("Change %"),
                   "events": st.column_config.NumberColumn("Events", format="%,.0f"),
                   "team": st.column_config.TextColumn("Team"),
                   "flow": st.column_config.TextColumn("Flow (rule account/bus/rule -> "
                                                       "target account, kind)"),
                   "target_kind": st.column_config.TextColumn("Target"),
                   "hops": st.column_config.TextColumn("Forwarded by")})
    st.markdown("**Per team**")
    # without the previous month's same days, its columns would be None in every row
    before = [] if view.compared else ["per_million_before", "change_pct"]
    st.dataframe(view.teams.drop(columns=before), hide_index=True, width="stretch",
                 column_config=config)
    partial = view.through is not None and view.through < month_end(view.month)
    st.markdown("**Risers**: the flows whose unit cost rose most"
                + (" (same days of the previous month)" if partial else ""))
    if view.risers.empty and not view.compared:
        days = (f"days 1 to {view.through.day} of " if partial and view.through else "")
        st.caption(f"No riser to show: {days}{month_before(view.month)} "
                   f"{'have' if days else 'has'} no flow events to compare with (flow "
                   f"metrics start on {_day(view.first_day)}).")
    elif view.risers.empty:
        st.caption("No flow's unit cost rose.")
    else:
        st.markdown("\n".join(
            f"- **{md(row['flow'])}** ({md(row['team'])}): {row['per_million_before']:,.4f} → "
            f"{row['per_million']:,.4f} {rv.currency} per million events: "
            f"{md(row['reason'])}" for row in view.risers.to_dict("records")))
    if len(view.daily):
        figure = go.Figure()
        for flow_name, rows in view.daily.groupby("flow"):
            figure.add_scatter(x=rows["date"], y=rows["per_million"], mode="lines+markers",
                               name=pt(flow_name))
        figure.update_layout(height=340, margin={"t": 10, "b": 10}, legend={"orientation": "h"},
                             yaxis_title=f"{rv.currency} per million events")
        # whole days, half a day either side: a month's first day alone would otherwise be
        # drawn over a millisecond
        dates = pd.to_datetime(view.daily["date"])
        first, last = dates.min(), dates.max()
        figure.update_xaxes(type="date", tickformat="%Y-%m-%d",
                            dtick=DAY_MS if (last - first).days <= 14 else None,
                            range=[first - pd.Timedelta(hours=12),
                                   last + pd.Timedelta(hours=12)])
        st.plotly_chart(figure, width="stretch", key="cost.flow_chart")
    if len(view.routes):
        st.markdown("**End to end**: flows that end at a target, with the forwarding hops "
                    "before them")
        st.dataframe(view.routes, hide_index=True, width="stretch", column_config=config)
    st.markdown("**Per flow**")
    st.dataframe(view.flows.drop(columns=["account_id", "bus", "rule", "target_arn", *before]),
                 hide_index=True, width="stretch", column_config=config)
    _unallocated(view, rv.currency)


def _unallocated(view: FlowCost, currency: str) -> None:
    if len(view.unallocated):
        total = float(view.unallocated["amount"].sum())
        with st.expander(f"Unallocated lines ({total:,.2f} {currency})"):
            _table(view.unallocated, currency,
                   {"account": "Account", "service": "Service", "usage_type": "Usage type",
                    "method": "Why"}, money=("amount",))


def _exports(ctx: AppContext, rv: cost_data.CostReview, today: object) -> None:
    cols = st.columns(2)
    cols[0].download_button(
        "Download XLSX", data=cost_data.load_xlsx(ctx.store_base, ctx.config_source, rv.month,
                                                  today),  # type: ignore[arg-type]
        file_name=f"orgscope-cost-{rv.month}.xlsx", key=XLSX_KEY,
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        help="Sheets: summary, by team, by account, by service, untagged, flow unit cost, "
             "flow end to end, method notes.")
    cols[1].download_button(
        "Download CSV", data=cost_data.export_csv(rv), file_name=f"orgscope-cost-{rv.month}.csv",
        mime="text/csv", key=CSV_KEY,
        help="Every line of the month: team, account, service, usage type, method, amount.")


def _resources(rv: cost_data.CostReview) -> None:
    st.subheader("Costliest resources")
    top = rv.resources
    if top.empty:
        st.info("No resource-level lines for this month. Cost Explorer does not give "
                "resource-level lines; configure a data export (docs/cost.md).")
        return
    # the account id and currency are in the CSV; the grid keeps the amount in view
    _table(top[["resource_id", "account", "service", "amount"]], rv.currency,
           {"resource_id": "Resource", "account": "Account", "service": "Service"},
           money=("amount",))
    st.caption(f"The {len(top)} resources that cost most in {rv.month} (the data export's "
               "resource lines; lines without a resource are not listed).")
    st.download_button("Download resources CSV", data=cost_data.resources_csv(top, rv.month),
                       file_name=f"orgscope-cost-resources-{rv.month}.csv", mime="text/csv",
                       key=RESOURCES_CSV_KEY)


def _closed(rv: cost_data.CostReview) -> None:
    st.subheader("Month close")
    closed = rv.closed_at
    if closed is None:
        st.caption(f"{rv.month} is not closed. Close it with `orgscope cost close {rv.month}` "
                   "once the bill is final; later restatements by AWS then show here.")
        return
    if rv.closed_diff.empty:
        st.success(f"Closed on {closed:%Y-%m-%d %H:%M} UTC; nothing has changed since.")
        return
    moved = float(rv.closed_diff["diff"].sum())
    st.warning(f"Closed on {closed:%Y-%m-%d %H:%M} UTC; AWS has restated "
               f"{len(rv.closed_diff)} lines since: {moved:+,.2f} {rv.currency} in all.")
    _table(rv.closed_diff, rv.currency, {"account": "Account"},
           money=("closed", "now", "diff"))


def main() -> None:
    run_page(render)


def render(ctx: AppContext) -> None:
    st.title("Cost")
    try:
        months = cost_data.load_months(ctx.store_base)
    except StoreError as error:
        st.error(f"Cannot read cost from the store: {error}")
        return
    if not months:
        st.info("**No cost has been collected yet.** The cost collector reads Cost Explorer "
                f"every 8 hours; run it now with\n\n```\n{ctx.collect_command} --only cost\n```")
        return
    today = datetime.now(UTC).date()
    default = cost_data.default_month(months, today)
    if st.session_state.get(MONTH_KEY) not in months:
        st.session_state[MONTH_KEY] = default
    current = f"{today:%Y-%m}"
    month = st.selectbox("Month", months, key=MONTH_KEY,
                         format_func=lambda m: m + (" (in progress)" if m == current and
                                                    m != default else ""))
    try:
        rv = cost_data.load_review(ctx.store_base, ctx.config_source, str(month), today)
    except StoreError as error:
        log.error("cost page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The cost data could not be read.** {error}", icon=":material/error:")
        return
    st.caption(f"Amounts in {rv.currency}, unblended cost (Cost Explorer, or the data export "
               f"when configured), data through "
               f"{rv.through}. {ctx.organization}: the whole organization (the sidebar's "
               "account, team and region filters do not apply to this page).")
    _headline(rv)
    _teams(rv)
    _movers(rv)
    _trend(rv)
    _details(rv)
    _flows(rv, today)
    _resources(rv)
    _exports(ctx, rv, today)
    _closed(rv)


if __name__ == "__main__":
    main()
