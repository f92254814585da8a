"""The Cost page's data: one :class:`CostReview` per (store, config, month), cached.

:func:`build_review` is plain (a store and a config in, frames out) and unit-tested without
Streamlit; :func:`load_review` caches it per widget value. All the arithmetic lives in
:mod:`orgscope.cost`; this module only picks the days each table needs and reads the store
through parameterized queries (:mod:`orgscope.cost.store_io`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd
import streamlit as st

from dashboard.data import open_store
from dashboard.flow_cost_data import FlowCost, build_flow_cost, method_rows, newest_flow_cost
from orgscope.config import Config
from orgscope.cost import anomalies, categories, forecast, review, store_io
from orgscope.cost.attribution import month_of
from orgscope.cost.forecast import Calibration
from orgscope.plugins import load_config
from orgscope.store import Store
from orgscope.untrusted import clean, csv_bytes

log = logging.getLogger(__name__)

CACHE_TTL_S = 30


@dataclass(frozen=True)
class CostReview:
    """Everything the page shows for one month. Amounts unrounded, in ``currency``."""

    month: str
    through: date
    complete: bool
    currency: str
    total: float
    previous: float
    untagged: float
    teams: pd.DataFrame
    accounts: pd.DataFrame
    services: pd.DataFrame
    untagged_lines: pd.DataFrame
    movers: pd.DataFrame
    anomalies: pd.DataFrame
    daily: pd.DataFrame
    forecast: pd.DataFrame
    band: pd.DataFrame
    overhead: pd.DataFrame
    api_spend: pd.DataFrame
    detail: pd.DataFrame
    closed: pd.DataFrame
    closed_diff: pd.DataFrame
    method_notes: pd.DataFrame
    notes: tuple[str, ...] = field(default=())
    #: The forecast interval's calibration (the default when the month is complete).
    calibration: Calibration = field(default_factory=Calibration)
    #: Unit cost per event flow (dataset flow_cost_daily), the same days as the review.
    flows: FlowCost | None = None
    #: When the month's flows delivered no events: the newest month whose flows did
    #: (:func:`dashboard.flow_cost_data.newest_flow_cost`), which the page shows instead.
    newest_flows: FlowCost | None = None
    #: The month's costliest resources (:func:`top_resources`; empty without a data export).
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def closed_at(self) -> datetime | None:
        if self.closed.empty:
            return None
        return pd.Timestamp(self.closed["closed_at"].max()).to_pydatetime()


def available_months(store: Store) -> list[str]:
    """Months with cost in ``cost_daily``, newest first."""
    frame = store.query("SELECT DISTINCT strftime(date, '%Y-%m') AS month FROM cost_daily "
                        "ORDER BY month DESC")
    return [str(m) for m in frame["month"]]


def default_month(months: list[str], today: date) -> str | None:
    """The last complete month with data: the newest before ``today``'s month (the current
    one when it is the only one). The current month is in progress through its last day
    (that day's cost is still accruing, Cost Explorer marks it Estimated); on the 1st, with
    nothing of the new month in yet, the month that just ended is the complete one."""
    if not months:
        return None
    complete = [m for m in months if m < month_of(today)]
    return complete[0] if complete else months[0]


def _names(config: Config) -> dict[str, str]:
    return {account.id: account.name for account in config.accounts}


def _with_names(frame: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    if "account_id" not in frame.columns:
        return frame
    position = list(frame.columns).index("account_id")
    frame = frame.copy()
    frame.insert(position, "account", [names.get(a, a) for a in frame["account_id"]])
    return frame


def forecast_note(calibration: forecast.Calibration) -> str:
    """How the forecast is made and how well its interval held, in one sentence or two."""
    text = ("Per account: the level of its last 7 days (weekday-adjusted median) times each "
            "remaining day's weekday factor (from its last 8 weeks), handed to the teams that "
            "own the account now (and to a new owner from a move recorded in team_history); "
            "90 % interval from the accounts' day-to-day spread")
    if calibration.samples:
        held = (f"; out of sample it held {calibration.coverage:.0%} of month totals"
                if calibration.coverage is not None else "")
        text += (f", scaled x{calibration.scale:.2f} by a backtest over {calibration.months} "
                 f"stored months ({calibration.samples} forecasts){held}")
    else:
        text += (f", scale x{calibration.scale:.2f} (fewer than two stored months to "
                 "backtest)")
    return text + (". With under two weeks of history a budget is not judged ('learning'). "
                   "docs/cost.md.")


def method_notes(config: Config, notes: tuple[str, ...],
                 calibration: forecast.Calibration | None = None) -> pd.DataFrame:
    """The rules behind every number, as (topic, rule) rows for the page and the XLSX."""
    cost = config.cost
    shared = ", ".join(a.name for a in config.accounts if a.shared) or "none"
    moves = [f"{a.name}: " + "; ".join(f"{p.team} until {p.until}" for p in a.team_history)
             + f"; {a.team} since" for a in config.accounts if a.team_history]
    rows = [
        ("Source", "Cost Explorer GetCostAndUsage, UnblendedCost, DAILY, by linked account, "
                   "Team tag, service and usage type (dataset cost_daily, latest per day)."),
        ("Team", "The Team tag where present; otherwise the account's team on that day "
                 "(config.toml [[accounts]] team and team_history)."
                 if cost.untagged == "account" else
                 "The Team tag where present; untagged cost is its own line 'untagged'."),
        ("Team moves", "; ".join(moves) or "none"),
        ("Shared accounts", f"{shared}: allocated by rule '{cost.shared_allocation}'"
         + (f" (all to {cost.platform_team})" if cost.shared_allocation == "platform" else
            " (evenly over the teams owning a non-shared account that day)"
            if cost.shared_allocation == "even" else
            " (by events published per team that month, PutEventsEntriesCount)")),
        ("Month over month", "A month in progress is compared with the same days of the "
                             "previous month."),
        ("Forecast", forecast_note(calibration or forecast.Calibration())),
        ("Anomalies", f"Daily cost per team and service at least {cost.anomaly_z:g} robust "
                      f"standard deviations and ${cost.anomaly_min_usd:,.0f} above the median "
                      f"of the previous {cost.anomaly_window_days} days."),
        ("Rounding", "Amounts are summed unrounded and shown to the cent."),
        *method_rows(),
    ]
    rows += [("Note", note) for note in notes]
    return pd.DataFrame(rows, columns=["topic", "rule"])


def build_review(store: Store, config: Config, month: str, today: date) -> CostReview:
    """The review of ``month`` from what the store holds today."""
    settings = config.cost
    names = _names(config)
    # early enough for the anomalies' window and for a forecast made on the month's first day
    start = min(store_io.history_start_for(month, settings.anomaly_window_days),
                store_io.forecast_start(month, review.month_first(month)))
    end = review.month_first(review.month_after(month))
    result = store_io.attributed(store, config, start, end)
    frame = result.frame
    in_month = frame[frame["month"] == month]
    last_day = max(pd.to_datetime(in_month["date"]).dt.date) if len(in_month) else \
        review.month_end(month)
    # the current month is in progress through its last day (today's cost still accrues)
    complete = month < month_of(today)
    through = review.month_end(month) if complete else last_day
    current, previous = review.this_and_previous(frame, month, through)
    total = float(current["amount"].sum())
    currency = str(current["currency"].iloc[0]) if len(current) else "USD"
    daily_team = current.groupby(["date", "team"])["amount"].sum().reset_index()
    outlook = pd.DataFrame(columns=forecast.COLUMNS)
    band = pd.DataFrame(columns=["date", "expected", "low", "high"])
    calibration = forecast.Calibration()
    if not complete:
        daily = store_io.forecast_daily(frame, month, through)
        calibration = store_io.forecast_calibration(store, through)
        outlook = forecast.forecast_month(daily, month, through, settings.budgets,
                                          calibration=calibration,
                                          owner_on=store_io.team_owner(config))
        band = forecast.daily_band(daily, month, through, calibration=calibration)
    found = anomalies.detect(frame, window=settings.anomaly_window_days,
                             z_threshold=settings.anomaly_z, min_usd=settings.anomaly_min_usd,
                             since=review.month_first(month))
    found = found[[month_of(d) == month for d in found["date"]]] if len(found) else found
    detail = current.groupby(review.SNAPSHOT_KEYS)["amount"].sum().reset_index()
    detail = detail.sort_values(["team", "amount"], ascending=[True, False], ignore_index=True)
    closed = store_io.read_closed(store, month)
    diff = review.closed_diff(closed, frame, month) if len(closed) else \
        pd.DataFrame(columns=[*review.SNAPSHOT_KEYS, "closed", "now", "diff"])
    usage = store_io.read_api_usage(store, month, month)
    flow_cost = build_flow_cost(store, config, month, through)
    return CostReview(
        month=month, through=through, complete=complete, currency=currency, total=total,
        previous=float(previous["amount"].sum()),
        untagged=float(current.loc[~current["tagged"].astype(bool), "amount"].sum()),
        teams=review.team_table(frame, month, through, settings.budgets),
        accounts=_with_names(review.breakdown(frame, month, ["account_id"], through), names),
        services=review.breakdown(frame, month, ["service"], through),
        untagged_lines=_with_names(review.untagged(frame, month, through), names),
        movers=_with_names(review.movers(frame, month, through), names),
        anomalies=_with_names(found, names),
        daily=daily_team,
        forecast=outlook,
        band=band,
        overhead=categories.overhead_by_team(current),
        api_spend=categories.api_spend(usage),
        detail=_with_names(detail, names),
        closed=closed,
        closed_diff=_with_names(diff, names),
        method_notes=method_notes(config, result.notes, calibration),
        notes=result.notes,
        calibration=calibration,
        flows=flow_cost,
        newest_flows=newest_flow_cost(store, config, month, today) if flow_cost.flows.empty
        else None,
        resources=top_resources(store, config, month),
    )


def export_sheets(rv: CostReview) -> dict[str, pd.DataFrame]:
    """The XLSX's sheets: summary, by team, by account, by service, untagged, flow unit
    cost, flow end to end, method notes.
    Amounts rounded to the cent; every sheet's amounts add up to the summary's total (up to
    the rounding of its rows)."""
    summary = pd.DataFrame([
        ("Month", rv.month),
        ("Data through", rv.through.isoformat()),
        ("Complete", "yes" if rv.complete else "no (month in progress)"),
        ("Currency", rv.currency),
        ("Total", round(rv.total, 2)),
        ("Previous month (same days)", round(rv.previous, 2)),
        ("Change", round(rv.total - rv.previous, 2)),
        ("Untagged", round(rv.untagged, 2)),
        ("Untagged share %", round(rv.untagged / rv.total * 100, 2) if rv.total else 0.0),
        ("Closed at", rv.closed_at.isoformat() if rv.closed_at else "not closed"),
    ], columns=["item", "value"])
    money = ["amount", "tagged", "untagged", "shared", "previous", "change", "budget"]

    def rounded(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for column in out.columns:
            if column in money or column.endswith("_pct"):
                out[column] = pd.to_numeric(out[column]).round(2)
        return out

    return {
        "summary": summary,
        "by team": rounded(rv.teams),
        "by account": rounded(rv.accounts),
        "by service": rounded(rv.services),
        "untagged": rounded(rv.untagged_lines),
        "flow unit cost": flow_sheet(rv.flows),
        "flow end to end": routes_sheet(rv.flows),
        "method notes": rv.method_notes,
    }


def flow_sheet(flows: FlowCost | None) -> pd.DataFrame:
    """The XLSX's flow sheet: every flow of the month with its events, cost, $ per million
    events and the previous month's (same days); amounts to the cent, unit costs to 4
    places; then the lines no flow carried."""
    columns = ["flow", "team", "target_kind", "events", "eventbridge", "target", "amount",
               "per_million", "per_million_before", "change_pct", "method"]
    if flows is None or flows.empty:
        return pd.DataFrame(columns=columns)
    table = flows.flows.assign(method="by events delivered (see method notes)")
    lost = flows.unallocated.assign(
        flow=[f"(unallocated) {a} {s} {u}" for a, s, u in zip(
            flows.unallocated["account"], flows.unallocated["service"],
            flows.unallocated["usage_type"], strict=True)],
        team="", target_kind="", events=0.0, eventbridge=0.0, target=0.0,
        per_million=float("nan"), per_million_before=float("nan"), change_pct=float("nan"))
    sheet = pd.concat([table[columns], lost[columns]], ignore_index=True)
    for column in ("eventbridge", "target", "amount"):
        sheet[column] = pd.to_numeric(sheet[column]).round(2)
    for column in ("per_million", "per_million_before", "change_pct"):
        sheet[column] = pd.to_numeric(sheet[column]).round(4)
    sheet["events"] = pd.to_numeric(sheet["events"]).round(0)
    return sheet


def routes_sheet(flows: FlowCost | None) -> pd.DataFrame:
    """The XLSX's end-to-end sheet: unit costs to 4 places, events whole."""
    routes = flows.routes if flows is not None else FlowCost("", None).routes
    return routes.round({"per_million": 4, "upstream_per_million": 4, "end_to_end": 4,
                         "events": 0})


def export_csv(rv: CostReview) -> bytes:
    """The month's lines (team, account, service, usage type, method, amount) as CSV (formula
    cells quoted: :func:`orgscope.untrusted.csv_bytes`)."""
    out = rv.detail.assign(month=rv.month, currency=rv.currency,
                           amount=rv.detail["amount"].round(2))
    return csv_bytes(out[["month", "team", "account", "account_id", "service", "usage_type",
                          "method", "amount", "currency"]])


#: Resources the Cost page lists for a month.
TOP_RESOURCES = 20
RESOURCE_COLUMNS = ["resource_id", "account", "account_id", "service", "amount", "currency"]


def top_resources(store: Store, config: Config, month: str, limit: int = TOP_RESOURCES
                  ) -> pd.DataFrame:
    """The month's costliest resources from ``cost_resources`` (a data export's resource
    lines; none with Cost Explorer): resource_id (one line of plain text, through
    :func:`orgscope.untrusted.clean`), account (its config name), account_id, service, amount,
    currency; most expensive first. Empty when the month has no resource line."""
    sql = """
        SELECT resource_id, account_id, service, sum(amount) AS amount,
               any_value(currency) AS currency
        FROM cost_resources WHERE date >= ?::DATE AND date <= ?::DATE
        GROUP BY resource_id, account_id, service
        ORDER BY amount DESC, resource_id, account_id, service LIMIT ?"""
    frame = store.query(sql, [review.month_first(month), review.month_end(month), limit])
    if frame.empty:
        return pd.DataFrame(columns=RESOURCE_COLUMNS)
    frame["resource_id"] = [clean(value) for value in frame["resource_id"]]
    frame["service"] = [clean(value) for value in frame["service"]]
    named: pd.DataFrame = _with_names(frame, _names(config))[RESOURCE_COLUMNS]
    return named.reset_index(drop=True)


def resources_csv(resources: pd.DataFrame, month: str) -> bytes:
    """:func:`top_resources` as CSV (formula cells quoted: :func:`orgscope.untrusted.csv_bytes`)."""
    return csv_bytes(resources.assign(month=month, amount=resources["amount"].round(2))[
        ["month", *RESOURCE_COLUMNS]])


# --- cached wrappers ---------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_months(store_base: str) -> list[str]:
    return available_months(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading cost…")
def load_review(store_base: str, config_source: str, month: str, today: date) -> CostReview:
    return build_review(open_store(store_base), load_config(config_source), month, today)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_xlsx(store_base: str, config_source: str, month: str, today: date) -> bytes:
    return review.workbook(export_sheets(load_review(store_base, config_source, month, today)))
