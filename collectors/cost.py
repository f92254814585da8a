"""Cost Explorer: the organization's daily cost per account, Team tag, service and usage type.

AWS API wrapped: ``ce:GetCostAndUsage``, in the management (payer) account through the read
role, which answers for every linked account of the organization. One session, no fan-out.
With ``source = "data_export"`` the organization's AWS Data Export in S3 is read instead
(:mod:`collectors.cost_export`: ``s3:ListObjectsV2`` and ``s3:GetObject`` through the same
role), and Cost Explorer only when the export cannot be read this run.

Datasets returned:

* ``cost_daily``: date, account_id, team_tag (the raw tag value, "" when untagged), service,
  usage_type, amount (UnblendedCost), currency, estimated, collected_at, usage_quantity
  (UsageQuantity in the usage type's own unit; null when Cost Explorer gives none).
* ``cost_resources`` (from a data export only): date, account_id, service, usage_type,
  resource_id, team_tag, amount, usage_quantity, currency, collected_at.

docs/cost.md explains the two queries ("The queries": **pairs**, account x tag, then one
**detail** per pair, service x usage type), what is re-read and when, and the price.
Invariants:

* Every page (``NextPageToken``) is one request, counted by the runner.
* The watermark is the first day that can still change; a day is returned again only when
  what Cost Explorer says about it changed, so ``cost_daily_history`` holds AWS's
  restatements and ``cost_daily`` the latest word per day.
* A group that cannot be understood (missing keys, an amount that is not a number) is logged
  and skipped; the rest of the page is kept.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from collectors.cost_export import (
    ExportFormat,
    ExportUnreadable,
    billing_periods,
    daily_rows,
    export_rows,
    parse_uri,
    read_export,
    resource_rows,
)
from orgscope.collect import CollectContext, Collected, Collector
from orgscope.config import CollectorConfig, Interval
from orgscope.cost.review import add_months
from orgscope.datasets import COST_DAILY, COST_RESOURCES

log = logging.getLogger(__name__)

#: The cost metric read. UnblendedCost is what the invoice says each day cost: finance
#: reconciles to it. (AmortizedCost spreads upfront RI / Savings Plans fees; see docs/cost.md.)
METRIC = "UnblendedCost"
#: The usage metric the detail query reads beside it: how many of the usage type's units
#: (events, requests, GB-seconds) the amount paid for, so a line's unit price is known
#: (docs/cost.md, "Unit cost per event flow"). A request costs $0.01 whatever its metrics.
USAGE_METRIC = "UsageQuantity"
GRANULARITY = "DAILY"
#: A response that keeps returning pages past this is a bug, not a bill.
MAX_PAGES = 1000


class CostCollectorConfig(CollectorConfig):
    """Cost Explorer (docs/cost.md): how much history, which tag, when a month is final.

    Cost Explorer refreshes its data at most three times a day and charges $0.01 a request,
    so the default interval is 8 hours.
    """

    interval: Interval = timedelta(hours=8)
    history_months: int = Field(default=13, ge=1, le=38)
    bill_final_day: int = Field(default=5, ge=1, le=28)
    tag_key: str = Field(default="Team", min_length=1, max_length=128)
    #: Where the cost comes from: Cost Explorer (default), or the organization's AWS Data
    #: Export in S3 (docs/cost.md, "Data exports"), with Cost Explorer as the fallback.
    source: Literal["cost_explorer", "data_export"] = "cost_explorer"
    #: The export's folder, ``s3://bucket/<prefix>/<export name>`` (source = "data_export").
    export_uri: str = ""
    export_format: ExportFormat = "focus-1.0"

    @model_validator(mode="after")
    def _export_named(self) -> CostCollectorConfig:
        if self.source == "data_export" and not self.export_uri:
            raise ValueError('source = "data_export" needs export_uri = '
                             '"s3://bucket/<prefix>/<export name>"')
        if self.export_uri:
            parse_uri(self.export_uri)  # ValueError unless s3://bucket/...
        return self


# --- windows ---------------------------------------------------------------------------------


def history_start(today: date, months: int) -> date:
    """First day of the oldest month kept: ``months`` calendar months, the current included."""
    return add_months(today, -(months - 1))


def open_from(today: date, bill_final_day: int) -> date:
    """First day that can still change: the current month's first day, or the previous
    month's until its bill is final (through ``bill_final_day`` of this month)."""
    return add_months(today, -1 if today.day <= bill_final_day else 0)


def read_window(
    today: date, settings: CostCollectorConfig, watermark: date | None
) -> tuple[date, date]:
    """[start, end) to read this run: from the watermark (or the history start on the first
    run) at the latest from the first open day, through today (end is exclusive, as in CE)."""
    floor = history_start(today, settings.history_months)
    if watermark is None:
        start = floor
    else:
        start = max(floor, min(watermark, open_from(today, settings.bill_final_day)))
    return start, today + timedelta(days=1)


# --- requests (pure; the simulator builds the same bodies from these) ------------------------


def _period(start: date, end: date) -> dict[str, str]:
    return {"Start": start.isoformat(), "End": end.isoformat()}


def pairs_request(start: date, end: date, tag_key: str) -> dict[str, Any]:
    """GetCostAndUsage parameters: daily cost per (linked account, tag value). No usage
    quantity: summed over every usage type of an account, its units would be meaningless."""
    return {
        "TimePeriod": _period(start, end),
        "Granularity": GRANULARITY,
        "Metrics": [METRIC],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
            {"Type": "TAG", "Key": tag_key},
        ],
    }


def tag_filter(tag_key: str, value: str) -> dict[str, Any]:
    """Cost Explorer's tag filter for one value; "" means the tag is absent (untagged)."""
    if value == "":
        return {"Key": tag_key, "MatchOptions": ["ABSENT"]}
    return {"Key": tag_key, "Values": [value], "MatchOptions": ["EQUALS"]}


def detail_request(
    start: date, end: date, tag_key: str, account_id: str, tag_value: str
) -> dict[str, Any]:
    """GetCostAndUsage parameters: one (account, tag value) pair's daily cost and usage
    quantity per service and usage type."""
    return {
        "TimePeriod": _period(start, end),
        "Granularity": GRANULARITY,
        "Filter": {
            "And": [
                {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [account_id]}},
                {"Tags": tag_filter(tag_key, tag_value)},
            ]
        },
        "Metrics": [METRIC, USAGE_METRIC],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "USAGE_TYPE"},
        ],
    }


def page_request(request: dict[str, Any], token: str | None) -> dict[str, Any]:
    """``request`` asking for the page ``token`` names (the first page without one)."""
    return {**request, "NextPageToken": token} if token else request


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostGroup:
    """One group of one ResultsByTime entry: a day, the group's two keys, its amount and its
    usage quantity (None when the group has none, or not a number)."""

    day: date
    keys: tuple[str, str]
    amount: float
    currency: str
    estimated: bool
    quantity: float | None = None


def usage_quantity(metrics: Any) -> float | None:
    """A group's ``UsageQuantity`` amount as a number; None when absent or not a finite
    number (the caller counts and logs those)."""
    try:
        value = float(metrics[USAGE_METRIC]["Amount"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_results(results_by_time: list[dict[str, Any]], where: str) -> list[CostGroup]:
    """ResultsByTime entries -> groups; a group that cannot be read is logged and skipped."""
    groups: list[CostGroup] = []
    for period in results_by_time:
        try:
            day = date.fromisoformat(period["TimePeriod"]["Start"][:10])
            estimated = bool(period.get("Estimated", False))
        except (KeyError, TypeError, ValueError) as error:
            log.warning("cost %s: skipped a period that cannot be read (%r): %s",
                        where, period.get("TimePeriod"), error)
            continue
        for group in period.get("Groups") or []:
            try:
                keys = group["Keys"]
                if len(keys) != 2 or not all(isinstance(k, str) for k in keys):
                    raise ValueError(f"expected two keys, got {keys!r}")
                metric = group["Metrics"][METRIC]
                amount = float(metric["Amount"])
                if not math.isfinite(amount):
                    raise ValueError(f"amount {metric['Amount']!r} is not a number")
                currency = str(metric.get("Unit") or "USD")
            except (KeyError, TypeError, ValueError) as error:
                log.warning("cost %s: skipped a bad group on %s (%r): %s",
                            where, day, group.get("Keys"), error)
                continue
            groups.append(CostGroup(day, (keys[0], keys[1]), amount, currency, estimated,
                                    usage_quantity(group["Metrics"])))
    return groups


def tag_value(key: str, tag_key: str) -> str:
    """'Team$orders' -> 'orders'; 'Team$' (untagged) -> ''. ValueError for another tag."""
    prefix = f"{tag_key}$"
    if not key.startswith(prefix):
        raise ValueError(f"tag group {key!r} is not of tag {tag_key!r}")
    return key[len(prefix):]


# --- AWS edge --------------------------------------------------------------------------------


def fetch(ce: Any, request: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    """Every page of one GetCostAndUsage query (one API call, so one $0.01, per page)."""
    token: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page: dict[str, Any] = ce.get_cost_and_usage(**page_request(request, token))
        yield page
        token = page.get("NextPageToken")
        if not token:
            return
        if token in seen:
            raise RuntimeError(f"cost {where}: Cost Explorer repeated page token {token!r}")
        seen.add(token)
    raise RuntimeError(f"cost {where}: more than {MAX_PAGES} pages")


def _pair_totals(
    ce: Any, start: date, end: date, tag_key: str
) -> dict[tuple[date, str, str], float]:
    """(day, account, tag value) -> amount, from the pairs query."""
    totals: dict[tuple[date, str, str], float] = defaultdict(float)
    for page in fetch(ce, pairs_request(start, end, tag_key), "pairs"):
        for group in parse_results(page.get("ResultsByTime", []), "pairs"):
            account, key = group.keys
            try:
                value = tag_value(key, tag_key)
            except ValueError as error:
                log.warning("cost pairs: skipped a bad group on %s: %s", group.day, error)
                continue
            totals[(group.day, account, value)] += group.amount
    return totals


def _detail_rows(
    ce: Any, window: tuple[date, date], tag_key: str, pair: tuple[str, str], *,
    collected_at: datetime,
) -> list[dict[str, Any]]:
    (start, end), (account, value) = window, pair
    where = f"{account} {tag_key}={value!r}"
    rows = []
    for page in fetch(ce, detail_request(start, end, tag_key, account, value), where):
        for group in parse_results(page.get("ResultsByTime", []), where):
            rows.append({
                "date": group.day, "account_id": account, "team_tag": value,
                "service": group.keys[0], "usage_type": group.keys[1],
                "amount": group.amount, "currency": group.currency,
                "estimated": group.estimated, "collected_at": collected_at,
                "usage_quantity": group.quantity,
            })
    return rows


def _check(totals: dict[tuple[date, str, str], float], frame: pd.DataFrame) -> None:
    """Warn where a pair's detail does not add up to its pairs total (a cent or more)."""
    if frame.empty:
        return
    detail = frame.groupby(["date", "account_id", "team_tag"])["amount"].sum().to_dict()
    for key, total in totals.items():
        if abs(detail.get(key, 0.0) - total) >= 0.01:
            log.warning("cost: detail of %s %s %r sums to %.4f, pairs total %.4f",
                        key[0], key[1], key[2], detail.get(key, 0.0), total)


_COMPARED = ["account_id", "team_tag", "service", "usage_type", "currency", "estimated"]


def _quantity_texts(frame: pd.DataFrame) -> pd.Series:
    """Each row's usage quantity as text ("nan" when null, or when the frame predates the
    column), so a day whose quantities changed or appeared counts as changed."""
    if "usage_quantity" not in frame:
        return pd.Series("nan", index=frame.index)
    values = pd.to_numeric(frame["usage_quantity"], errors="coerce").astype(float)
    return values.round(6).astype(str)


def _digests(frame: pd.DataFrame, compared: list[str]) -> pd.DataFrame:
    """Per date: the number of rows and an order-independent digest of their content
    (the ``compared`` columns, amount to 1e-8 dollars, usage quantity to 1e-6 units)."""
    content = frame[compared].astype(str).assign(
        nanos=(frame["amount"].astype(float) * 1e8).round().astype("int64"),
        quantity=_quantity_texts(frame))
    hashes = pd.util.hash_pandas_object(content, index=False).to_numpy() >> 16
    days = pd.to_datetime(frame["date"]).dt.date.to_numpy()
    return pd.DataFrame({"date": days, "digest": hashes.astype("int64")}).groupby(
        "date")["digest"].agg(["count", "sum"])


def changed_days(fresh: pd.DataFrame, stored: pd.DataFrame | None,
                 compared: list[str] | None = None) -> pd.DataFrame:
    """The rows of ``fresh`` for the days whose rows differ from the ``stored`` latest ones
    (every day when nothing is stored): unchanged days are not written again. ``compared``:
    the columns besides amount and usage quantity that tell rows apart (``cost_daily``'s by
    default)."""
    if stored is None or stored.empty or fresh.empty:
        return fresh
    compared = compared or _COMPARED
    first = pd.Timestamp(min(fresh["date"]))
    stored = stored[pd.to_datetime(stored["date"]) >= first]
    if stored.empty:
        return fresh
    after = _digests(fresh, compared)
    before = _digests(stored, compared).reindex(after.index)
    same = (after["count"] == before["count"]) & (after["sum"] == before["sum"])
    keep = set(after.index[~same])
    return fresh[fresh["date"].isin(keep)].reset_index(drop=True)


def _log_missing_quantities(frame: pd.DataFrame) -> None:
    """One warning per run for the groups Cost Explorer gave no usable UsageQuantity (their
    lines keep the share method of the flow allocation)."""
    if frame.empty:
        return
    missing = frame[frame["usage_quantity"].isna()]
    if len(missing):
        first = missing.iloc[0]
        log.warning("cost: %d of %d groups have no numeric %s (first: %s %s %s on %s); "
                    "stored as null", len(missing), len(frame), USAGE_METRIC,
                    first["account_id"], first["service"], first["usage_type"], first["date"])


def _explorer_rows(ctx: CollectContext, window: tuple[date, date], tag_key: str
                   ) -> pd.DataFrame:
    """``cost_daily`` rows of the window from Cost Explorer (the pairs query, then one
    detail query per (account, tag value) pair with cost)."""
    start, end = window
    ce = ctx.client("ce")
    totals = _pair_totals(ce, start, end, tag_key)
    pairs = sorted({(account, value) for (_, account, value), amount in totals.items()
                    if amount != 0})
    rows: list[dict[str, Any]] = []
    for account, value in pairs:
        rows.extend(_detail_rows(ce, (start, end), tag_key, (account, value),
                                 collected_at=ctx.collected_at))
    fresh = pd.DataFrame(rows, columns=COST_DAILY.columns)
    _check(totals, fresh)
    log.info("cost %s: Cost Explorer %s..%s, %d (account, %s) pairs", ctx.account.id, start,
             end - timedelta(days=1), len(pairs), tag_key)
    return fresh


def _export_lines(ctx: CollectContext, settings: CostCollectorConfig,
                  window: tuple[date, date], closed: date) -> pd.DataFrame:
    """The window's lines from the data export (:mod:`collectors.cost_export`); raises
    :class:`ExportUnreadable` when the export cannot be used this run."""
    start, end = window
    periods = billing_periods(start, end)
    open_periods = {p for p in periods if p >= closed.strftime("%Y-%m")}
    table = read_export(ctx.client("s3"), settings.export_uri, settings.export_format,
                        periods, open_periods)
    lines = export_rows(table, settings.export_format, settings.tag_key, start, end)
    log.info("cost %s: data export %s (%s) %s..%s: %d lines in its files, %d once summed",
             ctx.account.id, settings.export_uri, settings.export_format, start,
             end - timedelta(days=1), table.num_rows, len(lines))
    return lines


_RESOURCE_COMPARED = ["account_id", "team_tag", "service", "usage_type", "resource_id",
                      "currency"]


def collect_cost(ctx: CollectContext) -> Collected:
    """The organization's daily cost since the watermark, per (account, tag, service, usage
    type): from the data export when configured and readable (with its resource lines), else
    from GetCostAndUsage in the management account."""
    settings = ctx.settings if isinstance(ctx.settings, CostCollectorConfig) else \
        CostCollectorConfig()
    today = ctx.collected_at.astimezone(UTC).date()
    watermark = ctx.watermark.astimezone(UTC).date() if ctx.watermark else None
    start, end = read_window(today, settings, watermark)
    closed = open_from(today, settings.bill_final_day)
    frames: dict[str, pd.DataFrame] = {}
    fresh: pd.DataFrame | None = None
    if settings.source == "data_export":
        try:
            lines = _export_lines(ctx, settings, (start, end), closed)
        except ExportUnreadable as error:
            log.warning("cost %s: the data export cannot be read, reading Cost Explorer "
                        "for this run instead: %s", ctx.account.id, error)
        else:
            fresh = daily_rows(lines, ctx.collected_at, closed)
            resources = resource_rows(lines, ctx.collected_at)
            frames[COST_RESOURCES.name] = changed_days(
                resources, ctx.inputs.get(COST_RESOURCES.name), _RESOURCE_COMPARED)
    if fresh is None:
        fresh = _explorer_rows(ctx, (start, end), settings.tag_key)
    _log_missing_quantities(fresh)
    written = changed_days(fresh, ctx.inputs.get(COST_DAILY.name))
    frames[COST_DAILY.name] = written
    log.info("cost %s: read %s..%s, %d rows, %d days changed", ctx.account.id, start,
             end - timedelta(days=1), len(fresh),
             written["date"].nunique() if not written.empty else 0)
    return Collected(
        frames=frames,
        watermark=datetime(closed.year, closed.month, closed.day, tzinfo=UTC),
    )


def _export_place(ctx: CollectContext) -> tuple[str, str] | None:
    """(bucket, export folder) when this collector reads a data export, else None."""
    settings = ctx.settings
    if isinstance(settings, CostCollectorConfig) and settings.source == "data_export":
        return parse_uri(settings.export_uri)
    return None


def probe_export_list(ctx: CollectContext) -> object:
    """s3:ListBucket: one ListObjectsV2 of at most one key under the export's folder; no
    call (nothing to prove) while the collector reads Cost Explorer."""
    place = _export_place(ctx)
    if place is None:
        return None
    return ctx.client("s3").list_objects_v2(Bucket=place[0], Prefix=place[1], MaxKeys=1)


def probe_export_get(ctx: CollectContext) -> object:
    """s3:GetObject of a made-up key under the export's folder (NoSuchKey proves the
    action); no call while the collector reads Cost Explorer."""
    place = _export_place(ctx)
    if place is None:
        return None
    key = f"{place[1]}/orgscope-access-probe" if place[1] else "orgscope-access-probe"
    return ctx.client("s3").get_object(Bucket=place[0], Key=key)


COST = Collector(
    name="cost",
    settings=CostCollectorConfig,
    fn=collect_cost,
    datasets=(COST_DAILY, COST_RESOURCES),
    scope="payer",
    feeds=("flow_cost",),
    description="Daily cost per account, Team tag, service and usage type (Cost Explorer, or "
                "the organization's data export with resource lines).",
    # s3: the data export (source = "data_export"); the template grants them on the export's
    # bucket only, and only when its ExportBucket parameter names one
    iam_actions=("ce:GetCostAndUsage", "s3:GetObject", "s3:ListBucket"),
    inputs=(COST_DAILY.name, COST_RESOURCES.name),
    # one day of one metric: $0.01, Cost Explorer's price for any request
    probes=(("ce:GetCostAndUsage", lambda ctx: ctx.client("ce").get_cost_and_usage(
        TimePeriod={"Start": (ctx.collected_at.date() - timedelta(days=1)).isoformat(),
                    "End": ctx.collected_at.date().isoformat()},
        Granularity="DAILY", Metrics=["UnblendedCost"])),
        ("s3:GetObject", probe_export_get), ("s3:ListBucket", probe_export_list)),
)
