"""The cost review's edges: read ``cost_daily`` and its signals from the store, attribute them,
and close a month. Every value reaches DuckDB as a parameter."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pandas as pd
import pyarrow as pa

from orgscope.config import Config
from orgscope.cost.attribution import Attribution, attribute
from orgscope.cost.categories import ce_requests_sql
from orgscope.cost.forecast import SHAPE_DAYS, Calibration, OwnerOn, calibrate
from orgscope.cost.review import add_months, month_after, month_before, month_first, snapshot
from orgscope.datasets import COST_CLOSED_MONTHS
from orgscope.file_index import FileIndex
from orgscope.store import Store

log = logging.getLogger(__name__)

EVENTS_METRIC = "PutEventsEntriesCount"


def read_cost(store: Store, start: date, end: date) -> pd.DataFrame:
    """``cost_daily`` (latest per date) rows dated in [start, end)."""
    return store.query(
        "SELECT date, account_id, team_tag, service, usage_type, amount, currency, estimated "
        "FROM cost_daily WHERE date >= ? AND date < ?", [start, end])


def read_events(store: Store, start: date, end: date) -> pd.DataFrame:
    """Events published per account and day (date, account_id, entries) in [start, end)."""
    return store.query(
        "SELECT CAST(ts AS DATE) AS date, account_id, sum(value) AS entries FROM event_metrics "
        "WHERE metric = ? AND ts >= ? AND ts < ? GROUP BY ALL",
        [EVENTS_METRIC, start, end])


#: orgscope's own billed API usage per month of runs (module doc of orgscope.file_index: each
#: runs file is summed once per process; a month at 100 accounts is millions of runs).
API_USAGE = FileIndex(
    name="runs__api_usage_by_month",
    per_file=f"""
        SELECT filename, strftime(started_at, '%Y-%m') AS month,
               sum(metrics_requested)::BIGINT AS metrics,
               sum({ce_requests_sql()})::BIGINT AS ce_calls,
               sum(coalesce(traces_retrieved, 0))::BIGINT AS traces
        FROM ({{scan}}) GROUP BY ALL""",
    combine="""
        SELECT NULL::VARCHAR AS filename, month, sum(metrics)::BIGINT AS metrics,
               sum(ce_calls)::BIGINT AS ce_calls, sum(traces)::BIGINT AS traces
        FROM per_file GROUP BY ALL""",
    schema=pa.schema([("filename", pa.string()), ("month", pa.string()),
                      ("metrics", pa.int64()), ("ce_calls", pa.int64()),
                      ("traces", pa.int64())]),
)


def read_api_usage(store: Store, first_month: str, last_month: str) -> pd.DataFrame:
    """orgscope's own billed API usage per month of the collector ``runs``, for the months
    [first_month, last_month] (YYYY-MM, UTC): month, metrics (CloudWatch metrics requested),
    ce_calls (``ce:GetCostAndUsage`` calls, from ``api_calls_by_operation``; text that is not
    a JSON object counts 0), traces (X-Ray traces retrieved); ordered by month."""
    usage = store.indexed(API_USAGE, "runs")
    chosen = usage[(usage["month"] >= first_month) & (usage["month"] <= last_month)]
    return chosen.sort_values("month", ignore_index=True)


def last_cost_day(store: Store) -> date | None:
    """The newest day in ``cost_daily``, or None when it is empty."""
    frame = store.query("SELECT max(date) AS last FROM cost_daily")
    value = frame["last"].iloc[0] if len(frame) else None
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date()


def attributed(store: Store, config: Config, start: date, end: date) -> Attribution:
    """``cost_daily`` in [start, end) attributed to teams by ``config``'s rules."""
    cost = read_cost(store, start, end)
    events = read_events(store, start, end) if config.cost.shared_allocation == "events" \
        else None
    return attribute(cost, config.accounts, config.cost, events)


def read_account_totals(store: Store, start: date, end: date) -> pd.DataFrame:
    """Cost per account and day (date, account_id, amount) in [start, end): what the
    forecast's backtest replays (orgscope.cost.forecast.calibrate)."""
    return store.query(
        "SELECT date, account_id, sum(amount) AS amount FROM cost_daily "
        "WHERE date >= ? AND date < ? GROUP BY ALL", [start, end])


def forecast_start(month: str, through: date) -> date:
    """The first day the forecast of ``month`` made with data through ``through`` learns
    from: :data:`~orgscope.cost.forecast.SHAPE_DAYS` days before ``through``, or the month's
    first day if earlier. A reader of attributed cost starts there at the latest."""
    return min(month_first(month), through - timedelta(days=SHAPE_DAYS - 1))


def forecast_daily(frame: pd.DataFrame, month: str, through: date) -> pd.DataFrame:
    """What the forecast of ``month`` learns from, the same for the Cost page and the
    alerts: ``frame``'s attributed cost (read from :func:`forecast_start` or earlier) per
    day, account and team (date, account_id, team, amount) from :func:`forecast_start`
    through ``through``."""
    if frame.empty:
        return pd.DataFrame(columns=["date", "account_id", "team", "amount"])
    days = pd.to_datetime(frame["date"]).dt.date
    kept = frame[(days >= forecast_start(month, through)) & (days <= through)]
    daily: pd.DataFrame = kept.groupby(["date", "account_id", "team"], as_index=False).agg(
        amount=("amount", "sum"))
    return daily


#: Months of stored cost the forecast's interval is calibrated on.
CALIBRATION_MONTHS = 12


def forecast_calibration(store: Store, through: date) -> Calibration:
    """The forecast's calibration from the stored history before ``through``'s month (the
    default scale when fewer than two complete months are stored)."""
    start = add_months(through, -(CALIBRATION_MONTHS + 1))
    totals = read_account_totals(store, start, through + timedelta(days=1))
    calibration = calibrate(totals, through, CALIBRATION_MONTHS)
    log.debug("forecast calibration through %s: %s", through, calibration)
    return calibration


def team_owner(config: Config) -> OwnerOn:
    """The team of record of an account on a day, from config.toml (shared accounts: the
    platform team when shared cost goes to it)."""
    accounts = {a.id: a for a in config.accounts}

    def owner(account_id: str, day: date) -> str | None:
        account = accounts.get(account_id)
        if account is None:
            return None
        if account.shared and config.cost.shared_allocation == "platform":
            return config.cost.platform_team
        return account.team_on(day)
    return owner


def read_closed(store: Store, month: str) -> pd.DataFrame:
    """The latest closed snapshot of ``month`` (empty when it was never closed)."""
    return store.query("SELECT * FROM cost_closed_months WHERE month = ?", [month])


def close_month(store: Store, config: Config, month: str, now: datetime) -> pd.DataFrame:
    """Snapshot ``month`` into ``cost_closed_months`` and return the rows written."""
    start = month_first(month)
    end = month_first(month_after(month))
    result = attributed(store, config, start, end)
    if result.frame.empty:
        raise ValueError(f"no cost is stored for {month}: nothing to close")
    rows = snapshot(result.frame, month, now)
    run_id = f"close-{month}-{now:%Y%m%dT%H%M%S}"
    store.write(COST_CLOSED_MONTHS.name, rows, run_id)
    log.info("closed %s: %d rows, %.2f in all", month, len(rows), rows["amount"].sum())
    return rows


def history_start_for(month: str, window_days: int) -> date:
    """The first day the review of ``month`` needs: the previous month's first day, or the
    anomaly window before the month if that is earlier."""
    first = month_first(month)
    return min(first - timedelta(days=window_days), month_first(month_before(month)))
