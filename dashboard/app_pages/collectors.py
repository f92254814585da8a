"""Collectors: is every collector running, and what does the monitoring itself cost?

Top to bottom: the estimated monthly bill at the configured intervals, split by API; a red
banner for accounts a collector could not read (unreachable) and a warning for failed runs;
the bill per collector; an interval what-if (pick a collector and an interval, see the new
bill); the API calls and dollars of recent runs; the table per collector, account and region
with a CSV download. The numbers come from :mod:`orgscope.bill` (docs/performance.md,
"The monitoring's own bill").
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import collectors_data as cd
from dashboard.context import AppContext, run_page
from orgscope import bill
from orgscope.config import Config, ConfigError, format_interval, parse_interval
from orgscope.durations import duration_text
from orgscope.store import StoreError
from orgscope.untrusted import csv_bytes
from orgscope.untrusted import markdown as md

log = logging.getLogger(__name__)

WHAT_IF_COLLECTOR_KEY = "collectors.what_if_collector"
WHAT_IF_INTERVAL_KEY = "collectors.what_if_interval"
WHAT_IF_FOR_KEY = "collectors.what_if_for"
LINK_KEY = "collectors.link"
DOWNLOAD_KEY = "collectors.csv"
#: Buckets of the run-history chart: about one per 4 pixel columns of a wide chart.
HISTORY_POINTS = 300
PLOTLY_CONFIG = {"displayModeBar": False}
STATUS_COLOURS = {"ok": "#2e9e6b", "error": "#e0a030", "unreachable": "#d6453d"}
#: One colour per collector, the same in both panels of the history chart.
SERIES_COLOURS = ("#1f5fa8", "#e0a030", "#2e9e6b", "#7b61ff", "#d6453d", "#546e7a", "#8e6c3a")


def _usd(value: float) -> str:
    if pd.isna(value):
        return "no estimate"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:,.4f}"


def _headline(totals: pd.DataFrame, billed: pd.DataFrame) -> None:
    cols = st.columns(5)
    total = float(totals["monthly_usd"].sum())
    cols[0].metric("Estimated monthly bill", _usd(total), border=True,
                   help="AWS API charges of orgscope's own calls a 30-day month, at the "
                        "configured intervals, from the typical run of each collector, "
                        "account and region (docs/performance.md).")
    for col, (label, column) in zip(cols[1:4], (("CloudWatch", "cloudwatch_usd"),
                                                ("Cost Explorer", "cost_explorer_usd"),
                                                ("X-Ray", "xray_usd")), strict=True):
        col.metric(label, _usd(float(totals[column].sum())), border=True)
    failing = billed[billed["status"] != "ok"]
    cols[4].metric(
        "Runs failing now", len(failing), border=True,
        delta=f"{int((failing['status'] == 'unreachable').sum())} unreachable"
        if len(failing) else None,
        delta_color="inverse" if len(failing) else "off", delta_arrow="off",
        help="Collector, account and region whose last run failed.")


def _problems(billed: pd.DataFrame) -> None:
    down = billed[billed["status"] == "unreachable"]
    if len(down):
        accounts = down.groupby(["account", "account_id"], sort=True)
        lines = []
        for (name, account_id), group in accounts:
            error = str(group["last_error"].dropna().iloc[0]) if group["last_error"].notna(
            ).any() else "no reason recorded"
            lines.append(f"- **{md(name)}** ({md(account_id)}): "
                         f"{', '.join(sorted(set(group['collector'])))} — {md(error, 2000)}")
        st.error(f"**orgscope could not read {accounts.ngroups} account"
                 f"{'s' if accounts.ngroups != 1 else ''}** at the last run: its role could "
                 "not be assumed. Their estimate is from earlier successful runs; without one "
                 "it shows as no estimate.\n\n" + "\n".join(lines), icon=":material/block:")
    failed = billed[billed["status"] == "error"]
    if len(failed):
        lines = [f"- **{md(r['collector'])}** in {md(r['account'])} ({md(r['region'])}): "
                 f"{md(r['last_error'], 2000)}"
                 for r in failed.head(10).to_dict("records")]
        more = f"\n- … and {len(failed) - 10} more" if len(failed) > 10 else ""
        st.warning(f"**{len(failed)} run{'s' if len(failed) != 1 else ''} failed at the "
                   "last attempt** (the account is reachable):\n\n" + "\n".join(lines) + more,
                   icon=":material/warning:")


def _collector_table(totals: pd.DataFrame) -> None:
    shown = totals.assign(interval=totals["interval_s"].map(
        lambda s: format_interval(timedelta(seconds=float(s)))))
    st.dataframe(
        shown, hide_index=True, width="stretch",
        column_order=["collector", "interval", "accounts", "unreachable", "errors",
                      "api_calls_per_month", "cloudwatch_usd", "cost_explorer_usd", "xray_usd",
                      "s3_usd", "monthly_usd"],
        column_config={
            "collector": st.column_config.TextColumn(
                "Collector", pinned=True,
                help="metrics/fast and metrics/full are the metrics collector's two tiers, "
                     "priced apart: a full run takes the place of a fast one ([collectors.metrics] "
                     "full_interval)"),
            "interval": st.column_config.TextColumn("Interval"),
            "accounts": st.column_config.NumberColumn("Accounts", format="%d"),
            "unreachable": st.column_config.NumberColumn("Unreachable", format="%d"),
            "errors": st.column_config.NumberColumn("Failing", format="%d"),
            "api_calls_per_month": st.column_config.NumberColumn("API calls / month",
                                                                 format="%,.0f"),
            "cloudwatch_usd": st.column_config.NumberColumn("CloudWatch $", format="%,.2f"),
            "cost_explorer_usd": st.column_config.NumberColumn("Cost Explorer $",
                                                               format="%,.2f"),
            "xray_usd": st.column_config.NumberColumn("X-Ray $", format="%,.2f"),
            "s3_usd": st.column_config.NumberColumn(
                "S3 $", format="%,.4f",
                help="The cost collector's data export: S3 GET and LIST requests."),
            "monthly_usd": st.column_config.NumberColumn("Monthly $", format="%,.2f"),
        },
    )


def _what_if(usage: pd.DataFrame, config: Config, totals: pd.DataFrame) -> None:
    # a collector's tiers (metrics/fast, metrics/full) are one question: its interval
    bases = bill.base_names(totals["collector"])
    collectors = list(dict.fromkeys(bases))
    _from_link(collectors)
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    collector = str(left.selectbox("Collector", options=collectors, key=WHAT_IF_COLLECTOR_KEY))
    current = config.collector(collector).interval
    options = list(cd.WHAT_IF_INTERVALS)
    if format_interval(current) not in options:
        options = sorted({*options, format_interval(current)}, key=parse_interval)
    # a newly picked collector starts from its own configured interval
    if st.session_state.get(WHAT_IF_INTERVAL_KEY) not in options or \
            st.session_state.get(WHAT_IF_FOR_KEY) != collector:
        st.session_state[WHAT_IF_INTERVAL_KEY] = format_interval(current)
        st.session_state[WHAT_IF_FOR_KEY] = collector
    chosen_text = str(right.selectbox(
        "New interval", options=options, key=WHAT_IF_INTERVAL_KEY,
        format_func=lambda label: f"every {label}"
        + (" (configured)" if label == format_interval(current) else "")))
    chosen = parse_interval(chosen_text)
    now_usd = float(totals.loc[bases == collector, "monthly_usd"].sum())
    new_usd = bill.collector_monthly(usage, config, collector, chosen)
    total_now = float(totals["monthly_usd"].sum())
    cols = st.columns(3)
    enabled = config.collector(collector).enabled
    cols[0].metric(f"{collector} now ({format_interval(current)}"
                   f"{'' if enabled else ', disabled'})", _usd(now_usd), border=True)
    cols[1].metric(f"{collector} every {chosen_text}", _usd(new_usd),
                   delta=f"{new_usd - now_usd:+,.2f} $ a month", delta_color="inverse",
                   border=True)
    cols[2].metric("Whole bill", _usd(total_now - now_usd + new_usd),
                   delta=f"{new_usd - now_usd:+,.2f} $ a month", delta_color="inverse",
                   border=True)
    curve = bill.interval_curve(usage, config, collector,
                                [parse_interval(o) for o in options])
    figure = go.Figure(go.Scatter(
        x=options, y=curve["monthly_usd"], mode="lines+markers", line={"color": "#1f5fa8"},
        hovertemplate="every %{x}: $%{y:,.2f} a month<extra></extra>", name=collector))
    for label, colour in ((format_interval(current), "#78909c"), (chosen_text, "#d6453d")):
        if label in options:
            figure.add_vline(x=options.index(label), line={"color": colour, "dash": "dot"})
    figure.update_layout(height=240, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                         xaxis_title="interval", yaxis_title="$ a month",
                         yaxis_rangemode="tozero", showlegend=False)
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="collectors.curve")
    st.caption(_scaling_note(bill.schedules(config, [collector])[collector]))


def _from_link(collectors: list[str]) -> None:
    """A link ``?collector=metrics&interval=1h`` opens the what-if on that question, once."""
    params = st.query_params
    wanted, interval = params.get("collector"), params.get("interval")
    if wanted in collectors and st.session_state.get(LINK_KEY) != (wanted, interval):
        st.session_state[LINK_KEY] = (wanted, interval)
        st.session_state[WHAT_IF_COLLECTOR_KEY] = wanted
        st.session_state[WHAT_IF_FOR_KEY] = wanted
        try:
            st.session_state[WHAT_IF_INTERVAL_KEY] = format_interval(parse_interval(interval))
        except ValueError:
            st.warning(f"Link interval {md(interval)} is not a duration between 30s and 1d; "
                       "showing the configured one.")
            st.session_state.pop(WHAT_IF_FOR_KEY, None)


def _scaling_note(schedule: bill.Schedule) -> str:
    pricing = schedule.pricing
    if pricing.tiers:
        tiers = ", ".join(f"{name} every {format_interval(every)}"
                          for name, every in pricing.tiers.items())
        return ("Runs read one of two tiers (" + tiers + "): a full run reads every series "
                "of every rule, the fast runs between each rule's MatchedEvents, "
                "the failure signals across all rules and, when one is not zero, that metric "
                "of every rule. A new interval moves the fast runs; the full ones stay.")
    if pricing.kind == "chunked":
        return ("Each run re-reads the overlap and reads its window in chunks of at most an "
                f"hour, each requesting every series: metrics per run = series x "
                f"ceil((interval + {format_interval(pricing.overlap)}) / 1h).")
    if pricing.kind == "windowed":
        return ("Each run reads the traces of interval + "
                f"{format_interval(pricing.overlap)} overlap, retrieving at most "
                f"{pricing.cap:,} (max_traces_per_run): a longer interval reads more traces "
                "a run, so the bill falls less than the number of runs.")
    return "A run costs the same whatever the interval: the bill follows the number of runs."


def _history(ctx: AppContext, accounts: tuple[str, ...] | None) -> None:
    filters = ctx.filters
    history = cd.load_history(ctx.store_base, filters.time_range, accounts, filters.regions,
                              HISTORY_POINTS)
    if history.empty:
        st.caption(f"No runs in the last {filters.time_range}.")
        return
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("API calls", "Dollars (recorded usage)"))
    for index, (collector, part) in enumerate(history.groupby("collector", sort=True)):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        figure.add_trace(go.Scatter(
            x=part["bucket"], y=part["api_calls"], mode="lines", name=str(collector),
            legendgroup=str(collector), line={"color": colour},
            hovertemplate="%{x|%a %d %b %H:%M} UTC: %{y:,} calls<extra>" + str(collector)
            + "</extra>"), row=1, col=1)
        figure.add_trace(go.Bar(
            x=part["bucket"], y=part["dollars"], name=str(collector), legendgroup=str(collector),
            showlegend=False, marker_color=colour,
            hovertemplate="%{x|%a %d %b %H:%M} UTC: $%{y:,.4f}<extra>" + str(collector)
            + "</extra>"), row=2, col=1)
    figure.update_layout(height=420, barmode="stack", margin={"l": 0, "r": 0, "t": 30, "b": 0},
                         legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
                         hovermode="x unified")
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="collectors.history")
    per = cd.bucket_label(filters.time_range, HISTORY_POINTS)
    st.caption(f"Sums per {per} over the last {filters.time_range}, every run included "
               "(first-run back-fills too), so the dollars are what was spent, not the "
               "steady-state estimate above.")


def _status_style(status: object) -> str:
    colour = STATUS_COLOURS.get(str(status))
    return f"color: {colour}; font-weight: 600" if colour and status != "ok" else ""


def _runs_table(billed: pd.DataFrame) -> None:
    st.dataframe(
        billed.style.map(_status_style, subset=["status"]), hide_index=True, width="stretch",
        height=min(560, 35 * (len(billed) + 1) + 3),
        column_order=["collector", "account", "region", "status", "last_started_at",
                      "last_duration_s", "last_api_calls", "api_calls_per_run",
                      "metrics_per_run", "ce_requests_per_run", "traces_per_run", "runs",
                      "failed_runs", "monthly_usd", "last_error"],
        column_config={
            "collector": st.column_config.TextColumn("Collector", pinned=True),
            "account": st.column_config.TextColumn("Account", pinned=True),
            "region": st.column_config.TextColumn("Region"),
            "status": st.column_config.TextColumn("Status"),
            "last_started_at": st.column_config.DatetimeColumn(
                "Last run", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
            "last_duration_s": st.column_config.NumberColumn("Duration s", format="%.2f"),
            "last_api_calls": st.column_config.NumberColumn("API calls (last)", format="%d"),
            "api_calls_per_run": st.column_config.NumberColumn(
                "API calls / run", format="%,.1f",
                help="Typical run at the configured interval (median of recent ok runs)."),
            "metrics_per_run": st.column_config.NumberColumn("Metrics / run", format="%,.0f"),
            "ce_requests_per_run": st.column_config.NumberColumn("CE requests / run",
                                                                 format="%,.0f"),
            "traces_per_run": st.column_config.NumberColumn("Traces / run", format="%,.0f"),
            "runs": st.column_config.NumberColumn(f"Runs ({_lookback()})", format="%d"),
            "failed_runs": st.column_config.NumberColumn(f"Failed ({_lookback()})",
                                                         format="%d"),
            "monthly_usd": st.column_config.NumberColumn("Monthly $", format="%,.4f"),
            "last_error": st.column_config.TextColumn("Error", width="large"),
        },
    )
    export = billed.drop(columns=["interval_s"]).assign(
        interval=billed["interval_s"].map(lambda s: format_interval(timedelta(seconds=s))))
    st.download_button(
        "Download CSV", data=csv_bytes(export),
        file_name=f"orgscope-collectors-bill-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv",
        mime="text/csv", key=DOWNLOAD_KEY, icon=":material/download:", on_click="ignore")


def _lookback() -> str:
    return format_interval(bill.LOOKBACK)


def _no_runs(ctx: AppContext) -> None:
    st.info(
        f"**No collection run in the last {_lookback()}**, so there is nothing to estimate — "
        "this is not a failure to read any account.\n\n"
        f"Store: `{ctx.store_base}`\n\nRun one collection cycle now, with the same config as "
        f"this dashboard:\n\n```\n{ctx.collect_command}\n```\n\n"
        "then press **Refresh** in the sidebar.", icon=":material/hourglass_empty:")


def render(ctx: AppContext) -> None:
    filters = ctx.filters
    st.title("Collectors")
    st.caption(f"Is every collector running, and what does the monitoring itself cost in AWS "
               f"API charges? · {ctx.organization} · {filters.describe()} · estimates from the "
               f"runs of the last {_lookback()}; the time range applies to the history chart.")
    try:
        config = cd.load_config_cached(ctx.config_source)
    except ConfigError as error:
        st.error("**The config could not be read.** " + "; ".join(error.lines))
        return
    try:
        usage = cd.load_usage(ctx.store_base, ctx.config_source)
        accounts = cd.load_scope(ctx.store_base, filters.account_ids, filters.teams)
    except StoreError as error:
        log.error("collectors page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The store could not be read.** {error}", icon=":material/error:")
        return
    if usage.empty:
        _no_runs(ctx)
        return
    usage = cd.in_scope(usage, accounts, filters.regions)
    if usage.empty:
        st.warning("No collector runs match the filters in the sidebar.",
                   icon=":material/filter_alt_off:")
        return
    billed = cd.with_names(bill.bill(usage, config), ctx.account_names)
    totals = bill.by_collector(billed)
    newest = pd.Timestamp(billed["last_started_at"].max()).to_pydatetime()
    _headline(totals, billed)
    st.caption(f"Newest run {duration_text(datetime.now(UTC) - newest)} ago. "
               "A 30-day month; CloudWatch $0.01 per 1,000 metrics requested, Cost Explorer "
               "$0.01 a request, X-Ray $0.50 per million traces retrieved or scanned, a data "
               "export's S3 reads $0.005 per 1,000 LIST and $0.0004 per 1,000 GET; every "
               "other call orgscope makes is free.")
    _problems(billed)
    st.subheader("Bill per collector")
    _collector_table(totals)
    st.subheader("What if a collector ran at another interval?")
    _what_if(usage, config, totals)
    st.subheader("Recent runs")
    try:
        _history(ctx, accounts)
    except StoreError as error:
        log.error("collectors page: run history unreadable: %s", error)
        st.error(f"**The run history could not be read.** {error}", icon=":material/error:")
    st.subheader("Per collector, account and region")
    _runs_table(billed)


def main() -> None:
    run_page(render)


if __name__ == "__main__":
    main()
