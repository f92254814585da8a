"""Event flow: is every event getting where it should, and if not, where does it stop and why?

Top to bottom: a red banner for accounts orgscope could not read; rules by verdict across the
organization; an account (or team) x rule heatmap of verdicts; the most urgent rule's verdict,
reasons, delivery funnel and MatchedEvents against its usual band; the route map producers ->
bus -> rules -> targets coloured by verdict; dead-letter queue depth; the verdict table with a
CSV download. Everything below the title reruns on its own every :data:`REFRESH_EVERY` as a
fragment, so the page keeps itself current without a full reload.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import buckets, data, flow_cost_data, rule_metrics, traces_data
from dashboard import event_flow_data as flow
from dashboard import route_map as routes
from dashboard import verdicts as vd
from dashboard.context import AppContext, run_page
from dashboard.filters import Filters
from orgscope.cost.flows import unit_cost
from orgscope.datasets import AVERAGE_METRICS, VERDICTS
from orgscope.durations import bucket_text, duration_text
from orgscope.store import StoreError
from orgscope.untrusted import csv_bytes
from orgscope.untrusted import markdown as md
from orgscope.untrusted import plotly_text as pt

log = logging.getLogger(__name__)

REFRESH_EVERY = timedelta(seconds=60)

RULE_KEY = "event_flow.rule"
#: The link whose rule was last picked (a link picks its rule once).
LINKED_RULE_KEY = "event_flow.linked_rule"
METRIC_KEY = "event_flow.metric"
ROWS_KEY = "event_flow.heatmap_rows"
ONLY_NOT_OK_KEY = "event_flow.routes_only_not_ok"
DOWNLOAD_KEY = "event_flow.verdicts_csv"
#: Verdicts whose rule detail links to its consumer's traces.
TRACE_LINK_VERDICTS = ("FAILING", "DEGRADED")

#: Heatmap cell text for each verdict (colour is never the only cue).
SHORT: dict[str, str] = {
    "OK": "", "DEGRADED": "DEG", "SILENT": "SIL", "FAILING": "FAIL", "DISABLED": "OFF",
    "STALE": "?", vd.NO_VERDICT: "-",
}
CELL_ORDER: tuple[str, ...] = (*VERDICTS, vd.NO_VERDICT)
PLOTLY_CONFIG = {"displayModeBar": False}


def _coloured(verdict: str) -> str:
    colour = vd.VERDICT_MARKDOWN.get(verdict)
    return f":{colour}[**{verdict}**]" if colour else f"**{verdict}**"


# --- banner and headline ---------------------------------------------------------------------


def _unreachable_banner(ctx: AppContext, verdicts: pd.DataFrame) -> None:
    """The accounts the last check could not read, as on the Organization page."""
    filters = ctx.filters
    overview = data.load_accounts_overview(
        ctx.store_base, filters.time_range, filters.account_ids, filters.teams, filters.regions
    )
    down = overview[~overview["reachable"]]
    if down.empty:
        return
    lines = []
    for row in down.to_dict("records"):
        rules = verdicts[verdicts["account_id"] == row["account_id"]]
        since = row["unreachable_since"]
        when = f" since {since:%Y-%m-%d %H:%M} UTC" if pd.notna(since) else ""
        reason = md(row["reason"], 2000) if isinstance(row["reason"], str) \
            else "no reason recorded"
        lines.append(
            f"- **{md(row['name'])}** ({md(row['account_id'])}){when}: {reason} — "
            f"{len(rules)} rule{'s' if len(rules) != 1 else ''} shown from the last data read"
        )
    count = len(down)
    st.error(
        f"**orgscope could not read {count} account{'s' if count != 1 else ''}.** Their rules "
        "are STALE: what you see is the last data read, not zero traffic.\n\n"
        + "\n".join(lines),
        icon=":material/block:",
    )


def _headline(verdicts: pd.DataFrame) -> None:
    counts = vd.verdict_counts(verdicts)
    columns = st.columns(len(VERDICTS))
    for column, verdict in zip(columns, VERDICTS, strict=True):
        column.metric(
            _coloured(verdict), counts[verdict], border=True, help=vd.VERDICT_HELP[verdict]
        )
    judged = verdicts[verdicts["verdict"] != vd.NO_VERDICT]
    notes = [f"{len(judged)} rules judged"]
    if judged["evaluated_at"].notna().any():
        newest = pd.Timestamp(judged["evaluated_at"].max()).to_pydatetime()
        age = duration_text(datetime.now(UTC) - newest)
        notes.append(f"latest evaluation {newest:%H:%M:%S} UTC ({age} ago)")
    unjudged = len(verdicts) - len(judged)
    if unjudged:
        notes.append(f"{unjudged} rule{'s' if unjudged != 1 else ''} in the inventory not "
                     "judged yet")
    st.caption(" · ".join(notes))


# --- heatmap -----------------------------------------------------------------------------------


def _heatmap(verdicts: pd.DataFrame) -> None:
    rows = st.segmented_control(
        "Rows", options=["account", "team"], default="account", key=ROWS_KEY,
        format_func=str.capitalize, label_visibility="collapsed",
    ) or "account"
    cells = vd.verdict_matrix(verdicts, rows=rows)
    # rules in the order of their (first) row, so each account's rules sit together
    row_order = sorted(cells["row"].unique(), key=lambda r: (cells[cells["row"] == r]
                                                            ["urgency"].min(), r))
    rule_order = (cells.assign(position=cells["row"].map({r: i for i, r in enumerate(row_order)}))
                  .sort_values(["position", "urgency", "rule"])["rule"].drop_duplicates()
                  .tolist())
    codes = {verdict: index for index, verdict in enumerate(CELL_ORDER)}
    z = cells.pivot(index="row", columns="rule", values="verdict").reindex(
        index=row_order, columns=rule_order)
    hover = cells.pivot(index="row", columns="rule", values="hover").reindex(
        index=row_order, columns=rule_order)
    steps = len(CELL_ORDER)
    scale = []
    for index, verdict in enumerate(CELL_ORDER):
        colour = vd.VERDICT_COLOURS.get(verdict, vd.NO_VERDICT_COLOUR)
        scale += [[index / steps, colour], [(index + 1) / steps, colour]]
    figure = go.Figure(
        go.Heatmap(
            z=z.map(lambda v: codes.get(v) if isinstance(v, str) else None).to_numpy(),
            x=list(range(len(rule_order))), y=list(range(len(row_order))),
            text=z.map(lambda v: SHORT.get(v, "") if isinstance(v, str) else "").to_numpy(),
            texttemplate="%{text}", textfont={"size": 10, "color": "white"},
            customdata=hover.fillna("").to_numpy(),
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=scale, zmin=-0.5, zmax=steps - 0.5, showscale=False,
            xgap=2, ygap=2,
        )
    )
    figure.update_layout(
        height=max(260, 26 * len(row_order) + 190),
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        # positions with escaped tick labels: a name is never Plotly HTML, and two names
        # that escape alike stay two columns
        xaxis={"tickangle": -40, "tickfont": {"size": 10}, "showgrid": False,
               "tickvals": list(range(len(rule_order))), "ticktext": [pt(r) for r in rule_order]},
        yaxis={"autorange": "reversed", "showgrid": False,
               "tickvals": list(range(len(row_order))), "ticktext": [pt(r) for r in row_order]},
        plot_bgcolor="rgba(0,0,0,0)",
        hoverlabel={"align": "left"},
    )
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="event_flow.heatmap")
    st.caption(
        "Cells: " + "  ".join(
            f"{_coloured(v)}{' ' + SHORT[v] if SHORT[v] else ''}" for v in VERDICTS)
        + ". Hover a cell for the reasons; a rule in several regions shows its most urgent "
        "verdict."
    )


# --- one rule ----------------------------------------------------------------------------------


def _follow_link(keys: Sequence[vd.RuleKey]) -> None:
    """An alert's link (``?account=..&region=..&bus=..&rule=..``) picks its rule once per
    link; the reader's later choice stands. A link to a rule not in scope says so."""
    link = {name: st.query_params.get(name) for name in vd.RULE_LINK_PARAMS}
    if not link["rule"]:
        return
    text = "|".join(str(link[name] or "") for name in vd.RULE_LINK_PARAMS)
    linked = vd.linked_rule(keys, link)
    if linked is None:
        st.caption(f"The link names rule {md(str(link['rule']))}: it is not among the rules "
                   "in the sidebar's scope now, so the most urgent rule is shown.")
    elif st.session_state.get(LINKED_RULE_KEY) != text:
        st.session_state[LINKED_RULE_KEY] = text
        st.session_state[RULE_KEY] = linked.encode()


def _pick_rule(verdicts: pd.DataFrame) -> vd.RuleKey:
    keys = vd.rule_keys(verdicts)
    options = [key.encode() for key in keys]
    labels = vd.labels_for(keys, verdicts)
    _follow_link(keys)
    if st.session_state.get(RULE_KEY) not in options:
        st.session_state[RULE_KEY] = options[0]  # the most urgent rule
    chosen = st.selectbox(
        "Rule", options=options, key=RULE_KEY, format_func=lambda key: labels.get(key, key),
        help="Most urgent first. Defaults to the rule an alert's link names, else the most "
        "urgent rule in scope.",
    )
    return vd.RuleKey.decode(str(chosen))


def _verdict_box(row: Mapping[Any, Any]) -> None:
    verdict = str(row["verdict"])
    reasons = row["reasons"] if isinstance(row["reasons"], list) else []
    text = (
        f"{_coloured(verdict)} · **{md(row['rule'])}** on bus {md(row['bus'])} in "
        f"{md(row['account'])} ({md(row['account_id'])}), {md(row['region'])}"
    )
    body = "\n".join(f"- {md(reason, 2000)}" for reason in reasons) or \
        "- No reasons recorded."
    if verdict in ("FAILING", "STALE"):
        st.error(f"{text}\n\n{body}", icon=":material/error:")
    elif verdict in ("SILENT", "DEGRADED", "DISABLED"):
        st.warning(f"{text}\n\n{body}", icon=":material/warning:")
    elif verdict == "OK":
        st.success(f"{text}\n\n{body}", icon=":material/check_circle:")
    else:
        st.info(f"{text}\n\n- The health model has not judged this rule yet.",
                icon=":material/hourglass_empty:")


def _traces_link(ctx: AppContext, key: vd.RuleKey) -> None:
    """A link to the Traces page filtered to the rule's consumer and the time range."""
    _since, until = buckets.window(ctx.filters, datetime.now(UTC))
    params = traces_data.load_rule_link(ctx.store_base, key.encode(), ctx.filters.time_range,
                                        until)
    names = ctx.account_names
    consumers = params.get("service") or ", ".join(
        names.get(a, a) for a in params.get("account", "").split(",") if a) or key.rule
    st.page_link("app_pages/traces.py", query_params=params, icon=":material/timeline:",
                 label=f"Traces of {md(consumers)}, the consumer of {md(key.rule)}, in the last "
                       f"{ctx.filters.time_range}",
                 help="Opens the Traces page searched by the services whose spans carry "
                      "this rule as annotation event_rule (else the accounts of its "
                      "targets), in this time range.")


def _funnel(funnel: pd.DataFrame, time_range: str) -> None:
    stages = funnel[funnel["stage"].isin([stage for stage, _ in rule_metrics.FUNNEL])]
    if int(stages["periods"].sum()) == 0:
        st.info(f"No metrics stored for this rule in the last {time_range}: no data, which is "
                "not the same as zero events.", icon=":material/hourglass_empty:")
        return
    colours = ["#546e7a", "#607d8b", vd.VERDICT_COLOURS["OK"],
               vd.VERDICT_COLOURS["DEGRADED"], vd.VERDICT_COLOURS["FAILING"], "#8e2b25"]
    figure = go.Figure(
        go.Funnel(
            y=stages["stage"], x=stages["value"], marker={"color": colours},
            textinfo="value+percent initial", textposition="auto",
            hovertemplate="%{y}: %{x:,.0f}<extra></extra>", connector={"visible": False},
        )
    )
    figure.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="event_flow.funnel")
    extras = funnel[~funnel["stage"].isin(stages["stage"])]
    behind = rule_metrics.behind_matched(funnel)
    lag = "" if behind is None else (
        f" · Matched is read every run; the other stages come with the metrics collector's "
        f"full read (full_interval) unless something failed, so they reach "
        f"{behind + buckets.PERIOD:%H:%M} UTC")
    st.caption(" · ".join(f"{r['stage']}: {r['value']:,.0f}" for r in extras.to_dict("records"))
               + f" · sums over the last {time_range}" + lag)


def _series(series: pd.DataFrame, metric: str, filters: Filters) -> None:
    time_range = filters.time_range
    if series["value"].notna().sum() == 0:
        st.info(f"No {metric} stored for this rule in the last {time_range}.",
                icon=":material/hourglass_empty:")
        return
    per = bucket_text(buckets.bucket_for(filters.window))
    unit = "ms (average)" if metric in AVERAGE_METRICS else f"per {per}"
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=series["bucket"], y=series["high"], mode="lines", line={"width": 0},
        hoverinfo="skip", showlegend=False))
    figure.add_trace(go.Scatter(
        x=series["bucket"], y=series["low"], mode="lines", line={"width": 0},
        fill="tonexty", fillcolor="rgba(120,144,156,0.22)", name="usual range (p10-p90)",
        hoverinfo="skip"))
    figure.add_trace(go.Scatter(
        x=series["bucket"], y=series["expected"], mode="lines", name="usual (median)",
        line={"color": "#78909c", "dash": "dot", "width": 1.5},
        hovertemplate="usual %{y:,.0f}<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=series["bucket"], y=series["value"], mode="lines", name=metric,
        line={"color": "#1f5fa8", "width": 2},
        hovertemplate="%{x|%a %d %b %H:%M} UTC<br>" + metric + " %{y:,.0f}<extra></extra>"))
    figure.update_layout(
        height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0}, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        yaxis_title=unit, yaxis_rangemode="tozero",
    )
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="event_flow.series")
    if series["expected"].notna().any():
        band = ("The band is the health model's baseline of each point, the one its verdicts "
                "use: the same hour of the week in earlier weeks, or the rule's own average "
                "while its history is short (docs/health.md, \"Baselines\").")
    else:
        band = f"The health model keeps no baseline of {metric}: no band."
    st.caption(f"{len(series)} points of {per}. {band}")


def _rule_detail(ctx: AppContext, verdicts: pd.DataFrame) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    with left:
        key = _pick_rule(verdicts)
    metrics: Sequence[str] = rule_metrics.metric_choices()
    metric = str(right.selectbox("Metric", options=list(metrics), key=METRIC_KEY,
                                 help="The time series below; MatchedEvents by default."))
    match = verdicts[
        (verdicts["account_id"] == key.account_id) & (verdicts["region"] == key.region)
        & (verdicts["bus"] == key.bus) & (verdicts["rule"] == key.rule)
    ]
    row = match.iloc[0].to_dict()
    _verdict_box(row)
    _unit_cost(ctx, key)
    if row["verdict"] in TRACE_LINK_VERDICTS:
        _traces_link(ctx, key)
    time_range = ctx.filters.time_range
    funnel_column, series_column = st.columns([2, 3], gap="large")
    with funnel_column:
        st.markdown(f"**Delivery funnel**, last {time_range}")
        _funnel(flow.load_rule_funnel(ctx.store_base, key.encode(), time_range), time_range)
    with series_column:
        st.markdown(f"**{metric}** against its usual band, last {time_range}")
        series = flow.load_rule_series(ctx.store_base, ctx.config_source, key.encode(), metric,
                                       time_range)
        _series(series, metric, ctx.filters)


def _unit_cost(ctx: AppContext, key: vd.RuleKey) -> None:
    """The rule's $ per million events delivered this month (dataset flow_cost_daily)."""
    today = datetime.now(UTC).date()
    try:
        own = flow_cost_data.load_rule_unit_cost(
            ctx.store_base, (key.account_id, key.region, key.bus, key.rule), today)
    except StoreError as error:
        log.error("event flow: unit cost of %s unreadable: %s", key.rule, error)
        st.caption("Unit cost: the flow cost could not be read.")
        return
    if own.empty or float(own["events"].sum()) <= 0:
        st.caption("Unit cost: no flow cost stored for this rule this month (docs/cost.md, "
                   "\"Unit cost per event flow\").")
        return
    events, amount = float(own["events"].sum()), float(own["amount"].sum())
    per_million = unit_cost(amount, events)
    before = unit_cost(float(own["amount_before"].sum()), float(own["events_before"].sum()))
    compared = "" if pd.isna(before) else f"; {before:,.4f} the same days of last month"
    kinds = ", ".join(sorted(set(own["target_kind"])))
    st.markdown(f"**Unit cost** this month: **{per_million:,.4f} USD per million events** "
                f"delivered ({events:,.0f} events to {md(kinds)}, {amount:,.2f} USD){compared}."
                " See the Cost page, \"Unit cost per event flow\", for the method.")


# --- routes, DLQs, table -----------------------------------------------------------------------


def _routes(ctx: AppContext, verdicts: pd.DataFrame) -> None:
    filters = ctx.filters
    only_not_ok = st.toggle("Only routes of rules that are not OK", value=True,
                            key=ONLY_NOT_OK_KEY,
                            help="Switch off to draw every route in scope.")
    rules, buses = flow.load_route_inputs(
        ctx.store_base, filters.account_ids, filters.teams, filters.regions)
    graph = routes.route_map(rules, buses, verdicts, dict(ctx.account_names),
                           only_not_ok=only_not_ok)
    if graph.links.empty:
        st.caption("No routes to draw: no rules in scope" +
                   (" that are not OK." if only_not_ok else "."))
        return
    nodes, links = graph.nodes, graph.links
    tallest = int(nodes["kind"].value_counts().max())
    figure = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": nodes["label"], "color": nodes["colour"], "pad": 8, "thickness": 14,
              "customdata": nodes["hover"], "hovertemplate": "%{customdata}<extra></extra>",
              "line": {"width": 0}},
        link={"source": links["source"], "target": links["target"],
              "value": [1] * len(links), "color": links["colour"],
              "customdata": links["hover"], "hovertemplate": "%{customdata}<extra></extra>"},
        textfont={"size": 11},
    ))
    figure.update_layout(height=max(320, 30 * tallest + 60),
                         margin={"l": 0, "r": 0, "t": 10, "b": 10})
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="event_flow.routes")
    st.caption("Producers (bus policy principals and pattern sources) → bus → rule → target. "
               "Rules and their links take the verdict's colour; a target that is a bus "
               "continues into that bus's rules, across accounts.")


def _dlqs(ctx: AppContext) -> None:
    filters = ctx.filters
    latest = flow.load_dlq_latest(ctx.store_base, filters.account_ids, filters.teams,
                                  filters.regions)
    if latest.empty:
        st.caption("No dead-letter queue readings in scope (the DLQ collector has not run, or "
                   "no rule has a DLQ).")
        return
    series = flow.load_dlq_series(ctx.store_base, filters.time_range, filters.account_ids,
                                  filters.teams, filters.regions)
    busy = series.groupby("queue_arn")["visible"].max()
    busy_arns = busy[busy > 0].index.tolist()
    waiting = latest[latest["visible"] > 0]
    chart, table = st.columns([3, 2], gap="large")
    with chart:
        if not busy_arns:
            st.success(f"All {len(latest)} dead-letter queues stayed empty in the last "
                       f"{filters.time_range}.", icon=":material/check_circle:")
        else:
            figure = go.Figure()
            for arn in busy_arns:
                part = series[series["queue_arn"] == arn]
                figure.add_trace(go.Scatter(
                    x=part["bucket"], y=part["visible"], mode="lines", line_shape="hv",
                    name=pt(f"{part['queue'].iloc[0]} ({part['account'].iloc[0]})"),
                    hovertemplate="%{x|%a %d %b %H:%M} UTC: %{y} messages<extra></extra>"))
            figure.update_layout(
                height=280, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
                yaxis_title="messages (max per bucket)", yaxis_rangemode="tozero")
            st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG,
                            key="event_flow.dlq")
            quiet = len(latest) - len(busy_arns)
            st.caption(f"{quiet} other queue{'s' if quiet != 1 else ''} stayed empty in the "
                       f"last {filters.time_range}.")
    with table:
        if waiting.empty:
            st.caption("Every dead-letter queue is empty now.")
        else:
            shown = waiting.assign(
                oldest=waiting["oldest_age_s"].map(
                    lambda age: duration_text(float(age)) if pd.notna(age) else ""))
            st.dataframe(
                shown, hide_index=True,
                column_order=["queue", "account", "visible", "oldest"],
                column_config={
                    "queue": st.column_config.TextColumn("Queue waiting now"),
                    "account": st.column_config.TextColumn("Account"),
                    "visible": st.column_config.NumberColumn("Messages", format="%d"),
                    "oldest": st.column_config.TextColumn(
                        "Oldest", help="Age of the oldest message at the last reading."),
                },
            )


def _verdict_style(verdict: object) -> str:
    colour = vd.VERDICT_COLOURS.get(str(verdict))
    if colour is None or verdict == "OK":
        return ""
    return f"color: {colour}; font-weight: 600"


def _verdict_table(verdicts: pd.DataFrame) -> None:
    export = vd.verdict_export(verdicts)
    with st.expander(f"All {len(export)} rules and their verdicts", expanded=False):
        st.dataframe(
            export.style.map(_verdict_style, subset=["verdict"]), hide_index=True,
            height=min(560, 35 * (len(export) + 1) + 3),
            column_order=["verdict", "account", "region", "bus", "rule", "reasons", "team",
                          "evaluated_at"],
            column_config={
                "verdict": st.column_config.TextColumn("Verdict", pinned=True),
                "account": st.column_config.TextColumn("Account"),
                "region": st.column_config.TextColumn("Region"),
                "bus": st.column_config.TextColumn("Bus"),
                "rule": st.column_config.TextColumn("Rule"),
                "reasons": st.column_config.TextColumn("Reasons", width="large"),
                "team": st.column_config.TextColumn("Team"),
                "evaluated_at": st.column_config.DatetimeColumn(
                    "Evaluated", format="YYYY-MM-DD HH:mm", timezone="UTC"),
            },
        )
    st.download_button(
        "Download verdicts (CSV)",
        data=csv_bytes(export),
        file_name=f"orgscope-verdicts-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv",
        mime="text/csv", key=DOWNLOAD_KEY, icon=":material/download:", on_click="ignore",
    )


# --- the page ----------------------------------------------------------------------------------


def _no_verdicts(ctx: AppContext, metrics_present: bool) -> None:
    if metrics_present:
        what = ("Event metrics are stored, but the health model has not judged any rule yet. "
                "Verdicts appear after the next collection cycle.")
    else:
        what = ("**No event metrics have been collected yet**, so there is no verdict to "
                "show — this is not a failure to read any account.")
    st.info(
        f"{what}\n\nStore: `{ctx.store_base}`\n\nRun one collection cycle now, with the same "
        f"config as this dashboard:\n\n```\n{ctx.collect_command}\n```\n\n"
        "then press **Refresh** in the sidebar.",
        icon=":material/hourglass_empty:",
    )


@st.fragment(run_every=REFRESH_EVERY)
def live(ctx: AppContext) -> None:
    """Everything that refreshes itself: reads the store (30 s cache) and redraws."""
    filters = ctx.filters
    try:
        verdicts = flow.load_rule_verdicts(
            ctx.store_base, filters.account_ids, filters.teams, filters.regions,
            tag_key=ctx.team_tag_key, known=ctx.known_teams)
        judged = verdicts[verdicts["verdict"] != vd.NO_VERDICT]
        _unreachable_banner(ctx, verdicts)
        if judged.empty:
            _no_verdicts(ctx, flow.load_metrics_present(ctx.store_base))
            return
        _headline(verdicts)
        st.subheader("Verdicts by rule")
        _heatmap(verdicts)
        st.subheader("Rule detail")
        _rule_detail(ctx, verdicts)
        st.subheader("Dead-letter queues")
        _dlqs(ctx)
        st.subheader("Routes")
        _routes(ctx, verdicts)
        _verdict_table(verdicts)
    except StoreError as error:
        log.error("event flow page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The store could not be read.** {error}", icon=":material/error:")
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC; this part of the page refreshes "
               f"itself every {int(REFRESH_EVERY.total_seconds())} s.")


def render(ctx: AppContext) -> None:
    st.title("Event flow")
    st.caption(f"Is every event getting where it should? · {ctx.organization} · "
               f"{ctx.filters.describe()} · verdicts are the latest health evaluation; the "
               "time range applies to the charts.")
    live(ctx)


def main() -> None:
    run_page(render)


if __name__ == "__main__":
    main()
