"""Traces: find a slow or failing request and see it whole, across every account it crossed.

Top to bottom: the search (service, account, team, status, minimum duration, annotation
key=value; the sidebar's time range, accounts, teams and regions apply, or the window of a
deep link); the matching stitched traces, slowest first, with a CSV download; the chosen
trace's waterfall (one row per span in parent order, coloured by account, account crossings,
re-links and breaks marked); the organization's service map; latency percentiles and error
rate per service over time.

Deep links: ``/traces?service=payment-service&account=999999999999&min_ms=500&trace=<id>``
(also ``team``, ``status``, ``annotation=key=value``, ``since``/``until`` ISO times); the
Event flow page links a failing rule's consumer this way. The URL follows the search, so it
can be copied into a ticket or an alert.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import deeplinks as links
from dashboard import trace_colours
from dashboard import trace_criteria as criteria
from dashboard import trace_latency as lat
from dashboard import traces_data as td
from dashboard import traces_search as tsearch
from dashboard import waterfall as wf
from dashboard.context import AppContext, run_page
from orgscope.store import StoreError
from orgscope.traces.ids import to_w3c_trace_id
from orgscope.untrusted import csv_bytes
from orgscope.untrusted import markdown as md
from orgscope.untrusted import plotly_text as pt

log = logging.getLogger(__name__)

SERVICES_KEY = "traces.services"
ACCOUNTS_KEY = "traces.accounts"
TEAMS_KEY = "traces.teams"
STATUSES_KEY = "traces.statuses"
MIN_MS_KEY = "traces.min_ms"
ANNOTATION_KEY = "traces.annotation"
RESULTS_KEY = "traces.results"
TRACE_KEY = "traces.trace"
PERCENTILE_KEY = "traces.percentile"
DOWNLOAD_KEY = "traces.results_csv"
WINDOW_KEY = "traces.link_window"
LINK_KEY = "traces.link_applied"
ROW_KEY = "traces.selected_row"
WIDE_WINDOW_KEY = "traces.sidebar_window"

PLOTLY_CONFIG = {"displayModeBar": False}
PERCENTILES = ("p50", "p95", "p99")
QUIET_EDGE = "#90a4ae"
INDENT_PX = 16
CHAR_PX = 7.5
MAX_LABEL_PX = 460
#: How far a call that skips a column arcs above the services in between (map units).
ARC_LIFT = 0.7


# --- deep links --------------------------------------------------------------------------------


def _apply_link(ctx: AppContext) -> None:
    """Put a new deep link's values into the search widgets (once per distinct link)."""
    params = {name: st.query_params.get_all(name) for name in links.LINK_PARAMS
              if name in st.query_params}
    signature = repr(sorted(params.items()))
    # widget state is dropped when another page is shown: a visit starts without it
    fresh = SERVICES_KEY not in st.session_state
    if not params:
        if fresh:  # opened from the navigation: the sidebar's range, not an old link's
            st.session_state[WINDOW_KEY] = None
        return
    if st.session_state.get(LINK_KEY) == signature and not fresh:
        return
    st.session_state[LINK_KEY] = signature
    try:
        link = links.read_link(params, ctx.account_names)
    except criteria.SearchError as error:
        st.warning(f"This link's filters were not applied: {md(error, 2000)}",
                   icon=":material/link_off:")
        return
    search = link.search
    st.session_state[SERVICES_KEY] = list(search.services)
    st.session_state[ACCOUNTS_KEY] = list(search.account_ids)
    st.session_state[TEAMS_KEY] = list(search.teams)
    st.session_state[STATUSES_KEY] = list(search.statuses)
    st.session_state[MIN_MS_KEY] = int(search.min_duration_ms)
    st.session_state[ANNOTATION_KEY] = criteria.format_annotations(search.annotations)
    st.session_state[WINDOW_KEY] = link.window
    if link.trace:
        st.session_state[TRACE_KEY] = link.trace
    log.info("traces page opened with link %s", params)


def _write_link(search: criteria.TraceSearch, window: criteria.Window | None,
                trace: str | None) -> None:
    """Keep the URL equal to what is shown, so it can be shared."""
    params = links.link_params(links.Link(search=search, window=window, trace=trace))
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    st.session_state[LINK_KEY] = repr(sorted((k, [v]) for k, v in params.items()))


# --- search ------------------------------------------------------------------------------------


def _window(ctx: AppContext) -> tuple[criteria.Window, criteria.Window | None]:
    """(the window searched, the deep link's window or None)."""
    linked = st.session_state.get(WINDOW_KEY)
    if isinstance(linked, criteria.Window):
        return linked, linked
    return criteria.Window.last(ctx.filters.time_range, datetime.now(UTC)), None


def _options(choices: list[str], key: str) -> list[str]:
    """The choices plus whatever is selected (a link may name one not seen in the window)."""
    chosen = [str(v) for v in st.session_state.get(key) or []]
    return sorted(set(choices) | set(chosen))


def _search_form(ctx: AppContext, window: criteria.Window, linked: criteria.Window | None
                 ) -> criteria.TraceSearch | None:
    names = ctx.account_names
    choices = td.load_search_choices(ctx.store_base, window)
    first = st.columns(4)
    services = first[0].multiselect(
        "Service", options=_options(choices["services"], SERVICES_KEY), key=SERVICES_KEY,
        placeholder="Any service", help="Traces that pass through any of these services.")
    accounts = first[1].multiselect(
        "Account", options=_options(choices["accounts"], ACCOUNTS_KEY), key=ACCOUNTS_KEY,
        placeholder="Any account", format_func=lambda a: f"{names.get(a, '?')} ({a})",
        help="Traces that cross any of these accounts (the sidebar's accounts apply too).")
    teams = first[2].multiselect(
        "Team", options=_options(choices["teams"], TEAMS_KEY), key=TEAMS_KEY,
        placeholder="Any team")
    statuses = first[3].multiselect(
        "Status", options=list(criteria.STATUSES), key=STATUSES_KEY, placeholder="Any status",
        help="fault: a span answered 5xx; error: 4xx or throttled; ok: neither.")
    second = st.columns([1, 2, 2], vertical_alignment="bottom")
    minimum = second[0].number_input(
        "Minimum duration (ms)", min_value=0, step=100, key=MIN_MS_KEY,
        help="Whole-trace duration, first span start to last span end.")
    annotation_text = second[1].text_input(
        "Annotation", key=ANNOTATION_KEY, placeholder="key=value, e.g. order_id=ord-1a2b3c",
        help="X-Ray annotations of any span of the trace; several key=value pairs separated "
        "by spaces must all hold.")
    with second[2]:
        if linked is not None:
            st.caption(f"Window from the link: {linked.since:%Y-%m-%d %H:%M} to "
                       f"{linked.until:%Y-%m-%d %H:%M} UTC")
            if st.button("Use the sidebar's time range", key=WIDE_WINDOW_KEY):
                st.session_state[WINDOW_KEY] = None
                st.rerun()
        else:
            st.caption(f"Traces that started in the last {ctx.filters.time_range} (the "
                       "sidebar's range; its accounts, teams and regions apply too).")
    try:
        return criteria.TraceSearch(
            services=tuple(services), account_ids=tuple(accounts), teams=tuple(teams),
            statuses=tuple(statuses), min_duration_ms=float(minimum or 0),
            annotations=criteria.parse_annotations(annotation_text or ""))
    except criteria.SearchError as error:
        st.error(md(error, 2000), icon=":material/error:")
        return None


def _results(ctx: AppContext, results: pd.DataFrame) -> None:
    export = tsearch.results_export(results, ctx.account_names)
    matched = int(results["matches"].iloc[0])
    shown = len(results)
    more = f" (the {shown} slowest shown)" if matched > shown else ""
    noun = "trace matches" if matched == 1 else "traces match"
    st.markdown(f"**{matched:,}** {noun}{more}. Click a row "
                "(or pick below) to see its waterfall; column headers sort.")
    st.dataframe(
        export, hide_index=True, key=RESULTS_KEY, on_select="rerun",
        selection_mode="single-row", height=min(420, 35 * (shown + 1) + 3),
        column_order=["duration_ms", "status", "start", "root_service", "root_name",
                      "accounts", "span_count", "errors", "faults", "breaks", "services",
                      "teams", "annotations", "trace_id"],
        column_config={
            "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%,.0f",
                                                         pinned=True),
            "status": st.column_config.TextColumn("Status"),
            "start": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm:ss",
                                                     timezone="UTC"),
            "root_service": st.column_config.TextColumn("Entry service"),
            "root_name": st.column_config.TextColumn("Entry span"),
            "accounts": st.column_config.TextColumn("Accounts", width="large"),
            "span_count": st.column_config.NumberColumn("Spans", format="%d"),
            "errors": st.column_config.NumberColumn("Errors", format="%d"),
            "faults": st.column_config.NumberColumn("Faults", format="%d"),
            "breaks": st.column_config.NumberColumn(
                "Breaks", format="%d", help="Spans where the trace could not be followed "
                "(missing parent, event without traceparent)."),
            "services": st.column_config.TextColumn("Services"),
            "teams": st.column_config.TextColumn("Teams"),
            "annotations": st.column_config.TextColumn("Annotations"),
            "trace_id": st.column_config.TextColumn("Trace id"),
        },
    )
    st.download_button(
        "Download traces (CSV)", data=csv_bytes(export),
        file_name=f"orgscope-traces-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv", mime="text/csv",
        key=DOWNLOAD_KEY, icon=":material/download:", on_click="ignore")


def _pick_trace(results: pd.DataFrame, names: Mapping[str, str]) -> dict[str, Any] | None:
    """The chosen trace's row: a clicked table row, else the picker (slowest first)."""
    options = results["trace_id"].tolist()
    selection = st.session_state.get(RESULTS_KEY)
    rows = list(selection["selection"]["rows"]) if selection else []
    if rows and rows != st.session_state.get(ROW_KEY) and rows[0] < len(options):
        st.session_state[TRACE_KEY] = options[rows[0]]
    st.session_state[ROW_KEY] = rows
    wanted = st.session_state.get(TRACE_KEY)
    if isinstance(wanted, str) and wanted not in options:
        try:
            w3c = to_w3c_trace_id(wanted)
        except ValueError:
            w3c = wanted
        members = results[results["member_trace_ids"].map(lambda ids: w3c in ids)]
        st.session_state[TRACE_KEY] = members["trace_id"].iloc[0] if len(members) else None
    if st.session_state.get(TRACE_KEY) not in options:
        st.session_state[TRACE_KEY] = options[0]
    labels = {str(r["trace_id"]): tsearch.trace_label({str(k): v for k, v in r.items()}, names)
              for r in results.to_dict("records")}
    chosen = st.selectbox("Trace", options=options, key=TRACE_KEY,
                          format_func=lambda trace: labels.get(trace, trace),
                          help="Slowest first; the waterfall below shows it.")
    match = results[results["trace_id"] == chosen]
    return match.iloc[0].to_dict() if len(match) else None


# --- waterfall ---------------------------------------------------------------------------------


def _waterfall(ctx: AppContext, trace: Mapping[str, Any]) -> None:
    names = dict(ctx.account_names)
    rows = td.load_waterfall(
        ctx.store_base, trace_id=str(trace["trace_id"]),
        member_trace_ids=tuple(trace["member_trace_ids"]),
        start=pd.Timestamp(trace["start"]).to_pydatetime(),
        end=pd.Timestamp(trace["end"]).to_pydatetime(), names=tuple(sorted(names.items())))
    if rows.empty:
        st.info("The spans of this trace are no longer in the store (compacted or pruned).",
                icon=":material/hourglass_empty:")
        return
    colours = trace_colours.account_colours([*ctx.account_names, *rows["account_id"]])
    figure = go.Figure()
    for account_id in dict.fromkeys(rows["account_id"]):
        part = rows[rows["account_id"] == account_id]
        outline = [trace_colours.STATUS_COLOURS.get(s, "#d6453d") if s != "ok" else "rgba(0,0,0,0)"
                   for s in part["status"]]
        figure.add_trace(go.Bar(
            orientation="h", y=part["row"], x=part["duration_ms"].clip(lower=0.5),
            base=part["offset_ms"], name=pt(f"{part['account'].iloc[0]} ({account_id})"),
            marker={"color": colours[account_id], "line": {"color": outline, "width": 2.5}},
            text=[f"{d:,.0f} ms" for d in part["duration_ms"]], textposition="outside",
            cliponaxis=False, customdata=part["hover"],
            hovertemplate="%{customdata}<extra></extra>", legendgroup="accounts",
            legendgrouptitle_text="Account"))
    markers = (
        ("crossing", "account boundary crossed", "triangle-right", "#263238"),
        ("relinked", "re-linked by traceparent", "diamond", "#7b61ff"),
    )
    for column, label, symbol, colour in markers:
        marked = rows[rows[column]]
        if len(marked):
            figure.add_trace(go.Scatter(
                x=marked["offset_ms"], y=marked["row"], mode="markers", name=label,
                marker={"symbol": symbol, "size": 11, "color": colour,
                        "line": {"color": "white", "width": 1}},
                customdata=marked["hover"], hovertemplate="%{customdata}<extra></extra>",
                legendgroup="marks", legendgrouptitle_text="Marks"))
    broken = rows[rows["break"].notna()]
    if len(broken):
        figure.add_trace(go.Scatter(
            x=broken["offset_ms"], y=broken["row"], mode="markers",
            name=pt("break: " + ", ".join(sorted(set(broken["break"])))),
            marker={"symbol": "x-thin-open", "size": 14, "color": "#d6453d",
                    "line": {"width": 3, "color": "#d6453d"}},
            customdata=broken["hover"], hovertemplate="%{customdata}<extra></extra>",
            legendgroup="marks", legendgrouptitle_text="Marks"))
    # a faint rule above every row where the trace enters another account
    for row in rows[rows["crossing"]]["row"]:
        figure.add_hline(y=row - 0.5, line={"color": "#b0bec5", "width": 1, "dash": "dot"})
    end = float((rows["offset_ms"] + rows["duration_ms"]).max())
    # span names as left-aligned annotations in the margin, indented by depth (tick labels
    # are right-aligned, which would hide the indentation)
    widths = [INDENT_PX * int(r["depth"]) + CHAR_PX * (len(str(r["name"])) + (
        len(str(r["service"])) + 3 if r["name"] != r["service"] else 0))
        for r in rows.to_dict("records")]
    margin = min(MAX_LABEL_PX, max(widths) + 24)
    for record in rows.to_dict("records"):
        service = "" if record["name"] == record["service"] else \
            f" <span style='color:#78909c'>· {pt(record['service'])}</span>"
        figure.add_annotation(
            x=0, xref="paper", y=record["row"], yref="y", xanchor="left", showarrow=False,
            xshift=-margin + 8 + INDENT_PX * int(record["depth"]),
            text=f"{pt(record['name'])}{service}", font={"family": "monospace", "size": 12},
            hovertext=record["hover"])
    figure.update_layout(
        height=34 * len(rows) + 110, barmode="overlay", bargap=0.25,
        margin={"l": margin, "r": 60, "t": 10, "b": 40},
        legend={"orientation": "v", "x": 1.01, "y": 1, "groupclick": "toggleitem"},
        xaxis={"title": "ms since the trace started", "range": [0, end * 1.12],
               "zeroline": True},
        yaxis={"autorange": "reversed", "showticklabels": False,
               "range": [len(rows) - 0.5, -0.5]},
    )
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="traces.waterfall")
    accounts = list(dict.fromkeys(rows["account"]))
    crossings = int(rows["crossing"].sum())
    notes = [f"{len(rows)} spans in {len(accounts)} accounts "
             f"({' → '.join(md(a) for a in accounts)})",
             f"{crossings} account crossing{'s' if crossings != 1 else ''}"]
    relinked = int(rows["relinked"].sum())
    if relinked:
        notes.append(f"{relinked} re-linked to its producer by the event's traceparent (the "
                     "X-Ray trace id changed at the bus)")
    for kind in sorted(set(broken["break"])):
        notes.append(f"break ({md(kind)}): {md(wf.BREAK_HELP.get(kind, kind))}")
    st.caption(" · ".join(notes) + ". Outlined bars answered with an error (amber) or a fault "
               "(red); rows are in parent order, indented by depth.")


# --- service map -------------------------------------------------------------------------------


def _error_colour(bad: float, calls: float) -> str:
    if calls <= 0 or bad <= 0:
        return QUIET_EDGE
    status = "fault" if bad / calls >= 0.05 else "error"
    return trace_colours.STATUS_COLOURS[status]


def _service_map(ctx: AppContext, window: criteria.Window) -> None:
    filters = ctx.filters
    graph = td.load_service_map(ctx.store_base, account_ids=filters.account_ids,
                                teams=filters.teams, regions=filters.regions, window=window)
    nodes, edges = graph.nodes, graph.edges
    if nodes.empty:
        st.caption("No traced calls in this window and scope.")
        return
    names = ctx.account_names
    colours = trace_colours.account_colours([*ctx.account_names, *nodes["account_id"]])
    position = {(str(r["service"]), str(r["account_id"])): (float(r["x"]), float(r["y"]))
                for r in nodes.to_dict("records")}
    figure = go.Figure()
    for box in graph.boxes.to_dict("records"):
        colour = colours.get(box["account_id"], "#90a4ae")
        figure.add_shape(type="rect", x0=box["x0"], x1=box["x1"], y0=box["y0"], y1=box["y1"],
                         line={"color": colour, "width": 1.5}, fillcolor=colour, opacity=0.12,
                         layer="below")
        figure.add_annotation(x=(box["x0"] + box["x1"]) / 2, y=box["y1"], yanchor="bottom",
                              text=f"<b>{pt(names.get(box['account_id'], box['account_id']))}</b>",
                              showarrow=False, font={"size": 11, "color": colour})
    busiest = max(float(edges["calls"].max()), 1.0) if len(edges) else 1.0
    arcs = False
    mid_x, mid_y, mid_hover = [], [], []
    for edge in edges.to_dict("records"):
        source = position.get((str(edge["source_service"]), str(edge["source_account_id"])))
        target = position.get((str(edge["target_service"]), str(edge["target_account_id"])))
        if source is None or target is None:
            continue
        colour = _error_colour(float(edge["errors"]), float(edge["calls"]))
        width = 1.5 + 5 * float(edge["calls"]) / busiest
        x, y = _edge(figure, source, target, colour, width)
        arcs = arcs or abs(target[0] - source[0]) > 1.01
        p95 = edge["p95_ms"]
        label = f"p95 {p95:,.0f} ms" if pd.notna(p95) else ""
        figure.add_annotation(x=x, y=y, text=label, showarrow=False, yshift=10,
                              font={"size": 10, "color": "#37474f"},
                              bgcolor="rgba(255,255,255,0.85)")
        mid_x.append(x)
        mid_y.append(y)
        mid_hover.append(
            f"<b>{pt(edge['source_service'])} → {pt(edge['target_service'])}</b><br>"
            f"{pt(names.get(edge['source_account_id'], edge['source_account_id']))} → "
            f"{pt(names.get(edge['target_account_id'], edge['target_account_id']))}"
            f"{' (cross-account)' if edge['cross_account'] else ''}<br>"
            f"{int(edge['calls']):,} calls · {int(edge['errors']):,} with errors · {label}")
    if mid_x:
        figure.add_trace(go.Scatter(x=mid_x, y=mid_y, mode="markers", showlegend=False,
                                    marker={"size": 14, "opacity": 0}, hovertext=mid_hover,
                                    hoverinfo="text"))
    _map_nodes(figure, nodes, names)
    span_x = float(nodes["x"].max()) - float(nodes["x"].min())
    low, high = float(graph.boxes["y0"].min()), float(graph.boxes["y1"].max())
    figure.update_layout(
        height=max(320, int(150 * (high - low)) + 120), showlegend=False,
        margin={"l": 10, "r": 10, "t": 30, "b": 10}, plot_bgcolor="white",
        xaxis={"visible": False, "range": [float(nodes["x"].min()) - 0.6,
                                           float(nodes["x"].min()) + span_x + 0.6]},
        yaxis={"visible": False, "range": [low - 0.3, high + (ARC_LIFT + 0.3 if arcs else 0.45)]},
    )
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="traces.service_map")
    risen = nodes[nodes["rose"]]
    sample = (f"from the {graph.traces:,} most recent traces of {graph.matched:,}"
              if graph.matched > graph.traces else f"from {graph.traces:,} traces")
    notes = [f"Accounts are boxes, services nodes, arrows calls ({sample}, "
             f"{describe_window(window)}); arrow width = calls, colour = errors (grey none, "
             "amber some, red ≥ 5 %); labels are the callee's p95."]
    def rise(r: Mapping[Any, Any]) -> str:
        return (f"**{md(r['service'])}** ({md(names.get(r['account_id'], r['account_id']))}) "
                f"{r['usual_p99_ms']:,.0f} → {r['latest_p99_ms']:,.0f} ms")

    sources = risen[risen["rise_source"]].sort_values("ratio", ascending=False)
    followers = risen[~risen["rise_source"]].sort_values("ratio", ascending=False)
    if len(sources):
        notes.append(":red[**p99 rose**] in the latest 5 minutes, against the 5-minute "
                     "buckets before, where the slowness starts (red ring): "
                     + ", ".join(rise(r) for r in sources.to_dict("records")) + ".")
    if len(followers):
        notes.append("Callers waiting on it (amber ring): " + ", ".join(
            rise(r) for r in followers.to_dict("records")) + ".")
    st.caption(" ".join(notes))


def _edge(figure: go.Figure, source: tuple[float, float], target: tuple[float, float],
          colour: str, width: float) -> tuple[float, float]:
    """Draw one call arrow; return where its label goes. A call that skips a column arcs
    over the services in between instead of running through them."""
    (x0, y0), (x1, y1) = source, target
    if abs(x1 - x0) <= 1.01:
        figure.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            showarrow=True, arrowhead=3, arrowsize=1, arrowwidth=width, arrowcolor=colour,
            standoff=22, startstandoff=22, text="")
        return (x0 + x1) / 2, (y0 + y1) / 2
    steps = [i / 24 for i in range(25)]
    xs = [x0 + (x1 - x0) * t for t in steps]
    ys = [y0 + (y1 - y0) * t + ARC_LIFT * math.sin(math.pi * t) for t in steps]
    figure.add_trace(go.Scatter(x=xs[1:-3], y=ys[1:-3], mode="lines", hoverinfo="skip",
                                showlegend=False, line={"color": colour, "width": width}))
    figure.add_annotation(
        x=x1, y=y1, ax=xs[-4], ay=ys[-4], xref="x", yref="y", axref="x", ayref="y",
        showarrow=True, arrowhead=3, arrowsize=1, arrowwidth=width, arrowcolor=colour,
        standoff=22, text="")
    return xs[12], ys[12]


def describe_window(window: criteria.Window) -> str:
    return f"{window.since:%m-%d %H:%M} to {window.until:%m-%d %H:%M} UTC"


def _map_nodes(figure: go.Figure, nodes: pd.DataFrame, names: Mapping[str, str]) -> None:
    fills, rings, widths, sizes, texts, hovers = [], [], [], [], [], []
    for node in nodes.to_dict("records"):
        bad = float(node["errors"]) + float(node["faults"])
        fills.append(_error_colour(bad, float(node["calls"])) if bad else "#eceff1")
        rose, source = bool(node["rose"]), bool(node["rise_source"])
        rings.append("#d6453d" if source else "#e0a030" if rose else "#546e7a")
        widths.append(6 if source else 4 if rose else 1.5)
        sizes.append(44 if source else 34 if rose else 30)
        p95 = node["p95_ms"]
        service = pt(node["service"])
        line = f"<b>{service}</b><br>p95 {p95:,.0f} ms" if pd.notna(p95) else \
            f"<b>{service}</b>"
        if rose:
            colour = "#d6453d" if source else "#b26a00"
            line += f"<br><b style='color:{colour}'>p99 ↑ {node['ratio']:,.1f}x</b>"
        texts.append(line)
        hover = (f"<b>{service}</b><br>{pt(names.get(node['account_id'], '?'))} "
                 f"({pt(node['account_id'])}) {pt(node['region'])}<br>"
                 f"{int(node['calls']):,} calls · "
                 f"{int(node['errors']):,} errors · {int(node['faults']):,} faults<br>"
                 + (f"p95 {p95:,.0f} ms" if pd.notna(p95) else ""))
        if pd.notna(node.get("latest_p99_ms")):
            hover += (f"<br>p99 latest {node['latest_p99_ms']:,.0f} ms, usually "
                      f"{node['usual_p99_ms']:,.0f} ms")
        hovers.append(hover)
    figure.add_trace(go.Scatter(
        x=nodes["x"], y=nodes["y"], mode="markers+text", text=texts,
        textposition="bottom center", textfont={"size": 11},
        marker={"size": sizes, "color": fills, "line": {"color": rings, "width": widths}},
        hovertext=hovers, hoverinfo="text", showlegend=False))


# --- latency -----------------------------------------------------------------------------------


def _latency(ctx: AppContext, window: criteria.Window) -> None:
    filters = ctx.filters
    frame = td.load_latency(ctx.store_base, account_ids=filters.account_ids,
                            teams=filters.teams, regions=filters.regions, window=window)
    if frame.empty:
        st.caption("No spans in this window and scope.")
        return
    percentile = st.segmented_control(
        "Percentile", options=list(PERCENTILES), default="p99", key=PERCENTILE_KEY,
        label_visibility="collapsed") or "p99"
    names = ctx.account_names
    colours = trace_colours.account_colours([*ctx.account_names, *frame["account_id"]])
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                           vertical_spacing=0.08,
                           subplot_titles=(f"{percentile} latency (ms)", "error rate (%)"))
    for (service, account), part in frame.groupby(["service", "account_id"], sort=True):
        label = pt(f"{service} · {names.get(str(account), account)}")
        colour = colours[str(account)]
        figure.add_trace(go.Scatter(
            x=part["bucket_start"], y=part[f"{percentile}_ms"], mode="lines+markers",
            name=label, legendgroup=label, line={"color": colour, "width": 2},
            marker={"size": 4}, customdata=part["count"],
            hovertemplate=f"{label}<br>%{{x|%H:%M}} UTC: %{{y:,.0f}} ms "
                          "(%{customdata} calls)<extra></extra>"), row=1, col=1)
        figure.add_trace(go.Scatter(
            x=part["bucket_start"], y=part["error_rate"] * 100, mode="lines", name=label,
            legendgroup=label, showlegend=False, line={"color": colour, "width": 1.5},
            hovertemplate=f"{label}<br>%{{x|%H:%M}} UTC: %{{y:.1f}} %<extra></extra>"),
            row=2, col=1)
    figure.update_layout(height=460, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                         hovermode="closest",
                         legend={"orientation": "h", "yanchor": "bottom", "y": -0.25, "x": 0})
    figure.update_yaxes(rangemode="tozero")
    st.plotly_chart(figure, width="stretch", config=PLOTLY_CONFIG, key="traces.latency")
    st.caption(f"Per service (entry spans: the time each took to answer), in buckets of "
               f"{lat.describe_latency_bucket(window.length)}, {describe_window(window)}.")


# --- the page ----------------------------------------------------------------------------------


def _no_traces(ctx: AppContext, presence: tsearch.Presence) -> None:
    if not presence.spans:
        what = ("**No spans have been collected yet**, so there is no trace to show — this is "
                "not a failure to read any account. The `xray` collector reads X-Ray "
                "(GetTraceSummaries, BatchGetTraces) in every account into the `spans` "
                "dataset; the `traces` step then stitches them across accounts.")
        command = f"{ctx.collect_command} --only xray"
    else:
        what = ("Spans are collected, but the `traces` step has not stitched them into traces "
                "yet. It runs after every `xray` collection (`orgscope serve`, or `orgscope "
                "collect --once`).")
        command = f"{ctx.collect_command} --only xray"
    st.info(f"{what}\n\nStore: `{ctx.store_base}`\n\nRun one collection now, with the same "
            f"config as this dashboard:\n\n```\n{command}\n```\n\nthen press **Refresh** in "
            "the sidebar.", icon=":material/hourglass_empty:")


def render(ctx: AppContext) -> None:
    st.title("Traces")
    st.caption(f"One request across every account it crossed · {ctx.organization} · "
               f"{ctx.filters.describe()}")
    try:
        presence = td.load_presence(ctx.store_base)
        if not presence.traces:
            _no_traces(ctx, presence)
            return
        _apply_link(ctx)
        window, linked = _window(ctx)
        search = _search_form(ctx, window, linked)
        if search is None:
            return
        filters = ctx.filters
        results = td.load_search(ctx.store_base, account_ids=filters.account_ids,
                                 teams=filters.teams, regions=filters.regions, search=search,
                                 window=window)
        trace = None
        if results.empty:
            st.info("No trace matches this search in the window. Widen the time range, lower "
                    "the minimum duration or clear a filter.", icon=":material/search_off:")
        else:
            _results(ctx, results)
            st.subheader("Waterfall")
            trace = _pick_trace(results, ctx.account_names)
            if trace is not None:
                _waterfall(ctx, trace)
        _write_link(search, linked, str(trace["trace_id"]) if trace else None)
        st.subheader("Service map")
        _service_map(ctx, window)
        st.subheader("Latency percentiles")
        _latency(ctx, window)
    except StoreError as error:
        log.error("traces page: store %s unreadable: %s", ctx.store_base, error)
        st.error(f"**The store could not be read.** {error}", icon=":material/error:")


def main() -> None:
    run_page(render)


if __name__ == "__main__":
    main()
