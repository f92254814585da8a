"""The monthly review's tables, from attributed rows (:mod:`orgscope.cost.attribution`).

A month still in progress (data through day ``d``) is compared with the same days of the
previous month (1..d), so a change is never "half a month less"; a complete month with the
whole previous month. Amounts stay unrounded here; the page and the exports round to cents.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime, timedelta

import pandas as pd

from orgscope.cost.attribution import month_of
from orgscope.cost.forecast import days_in_month
from orgscope.untrusted import safe_frame

SNAPSHOT_KEYS = ["team", "account_id", "service", "usage_type", "method"]
CENT = 0.005


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month (negative: before)."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def month_first(month: str) -> date:
    return date.fromisoformat(f"{month}-01")


def month_after(month: str) -> str:
    first = month_first(month)
    return month_of(first + timedelta(days=days_in_month(month)))


def month_before(month: str) -> str:
    return month_of(month_first(month) - timedelta(days=1))


def month_end(month: str) -> date:
    """The month's last day."""
    return month_first(month_after(month)) - timedelta(days=1)


def _days(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["date"]).dt.date


def this_and_previous(
    attributed: pd.DataFrame, month: str, through: date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The month's rows through ``through`` (default: month end), and the previous month's
    rows through the same day of month (all of it when ``month`` is complete)."""
    days = _days(attributed) if len(attributed) else pd.Series([], dtype=object)
    last = min(through or month_end(month), month_end(month))
    current = attributed[(attributed["month"] == month) & days.map(lambda d: d <= last)]
    previous = attributed[attributed["month"] == month_before(month)]
    if last < month_end(month):
        cut = days[previous.index].map(lambda d: d.day <= last.day)
        previous = previous[cut.astype(bool)]
    return current, previous


def _with_change(frame: pd.DataFrame, total: float) -> pd.DataFrame:
    frame = frame.fillna({"amount": 0.0, "previous": 0.0})
    frame["change"] = frame["amount"] - frame["previous"]
    frame["change_pct"] = (frame["change"] / frame["previous"].where(frame["previous"] != 0)
                           * 100)
    frame["share_pct"] = frame["amount"] / total * 100 if total else 0.0
    return frame


def team_table(
    attributed: pd.DataFrame, month: str, through: date | None = None,
    budgets: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """team, amount, tagged, untagged, shared, previous, change, change_pct, share_pct,
    budget: one row per team, largest first. ``untagged`` is cost without the Team tag
    attributed to the team through its accounts; ``shared`` its share of shared accounts."""
    current, previous = this_and_previous(attributed, month, through)
    kind = pd.Series("tagged", index=current.index)
    kind[~current["tagged"].astype(bool)] = "untagged"
    kind[current["shared"].astype(bool)] = "shared"
    parts = current.assign(kind=kind).pivot_table(
        index="team", columns="kind", values="amount", aggfunc="sum", fill_value=0.0)
    parts = parts.reindex(columns=["tagged", "untagged", "shared"], fill_value=0.0)
    parts["amount"] = parts.sum(axis=1)
    parts = parts.join(previous.groupby("team")["amount"].sum().rename("previous"), how="outer")
    table = _with_change(parts.fillna({"tagged": 0.0, "untagged": 0.0, "shared": 0.0}),
                         float(current["amount"].sum()))
    table["budget"] = [(budgets or {}).get(str(team)) for team in table.index]
    table = table.rename_axis("team").reset_index()
    columns = ["team", "amount", "tagged", "untagged", "shared", "previous", "change",
               "change_pct", "share_pct", "budget"]
    return table[columns].sort_values("amount", ascending=False, ignore_index=True)


def breakdown(
    attributed: pd.DataFrame, month: str, by: list[str], through: date | None = None,
) -> pd.DataFrame:
    """``by`` columns, amount, previous, change, change_pct, share_pct; largest first."""
    current, previous = this_and_previous(attributed, month, through)
    table = current.groupby(by)["amount"].sum().to_frame().join(
        previous.groupby(by)["amount"].sum().rename("previous"), how="outer")
    table = _with_change(table, float(current["amount"].sum())).reset_index()
    return table.sort_values("amount", ascending=False, ignore_index=True)


def untagged(attributed: pd.DataFrame, month: str, through: date | None = None) -> pd.DataFrame:
    """Cost without the Team tag: account_id, team, service, usage_type, amount, largest first
    (shared accounts included: they are untagged too, whoever pays)."""
    current, _ = this_and_previous(attributed, month, through)
    rows = current[~current["tagged"].astype(bool)]
    keys = ["account_id", "team", "service", "usage_type"]
    table = rows.groupby(keys)["amount"].sum().reset_index()
    return table.sort_values("amount", ascending=False, ignore_index=True)


def movers(
    attributed: pd.DataFrame, month: str, through: date | None = None, top: int = 5,
) -> pd.DataFrame:
    """The ``top`` teams whose cost changed most (either way), each with the account, service
    and usage type whose change explains most of it: team, previous, amount, change,
    account_id, service, usage_type, line_previous, line_amount, line_change."""
    keys = ["team", "account_id", "service", "usage_type"]
    lines = breakdown(attributed, month, keys, through)
    columns = ["team", "previous", "amount", "change", "account_id", "service", "usage_type",
               "line_previous", "line_amount", "line_change"]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    teams = lines.groupby("team")[["previous", "amount", "change"]].sum()
    teams = teams.reindex(teams["change"].abs().sort_values(ascending=False).index)[:top]
    rows = []
    for team, totals in teams.iterrows():
        own = lines[lines["team"] == team]
        same_way = own[own["change"] * totals["change"] > 0]
        line = (same_way if len(same_way) else own).sort_values(
            "change", key=lambda c: c.abs(), ascending=False).iloc[0]
        rows.append({"team": team, "previous": totals["previous"], "amount": totals["amount"],
                     "change": totals["change"], "account_id": line["account_id"],
                     "service": line["service"], "usage_type": line["usage_type"],
                     "line_previous": line["previous"], "line_amount": line["amount"],
                     "line_change": line["change"]})
    return pd.DataFrame(rows, columns=columns)


# --- month close ------------------------------------------------------------------------------


def snapshot(attributed: pd.DataFrame, month: str, closed_at: datetime) -> pd.DataFrame:
    """The month's numbers per team, account, service, usage type and method, as closed:
    the ``cost_closed_months`` rows (month, ..., amount, currency, closed_at)."""
    rows = attributed[attributed["month"] == month]
    table = rows.groupby([*SNAPSHOT_KEYS, "currency"])["amount"].sum().reset_index()
    table.insert(0, "month", month)
    table["closed_at"] = pd.Timestamp(closed_at)
    return table[["month", *SNAPSHOT_KEYS, "amount", "currency", "closed_at"]]


def closed_diff(closed: pd.DataFrame, attributed: pd.DataFrame, month: str) -> pd.DataFrame:
    """Where today's numbers for ``month`` differ from the closed snapshot by a cent or more:
    team, account_id, service, usage_type, method, closed, now, diff (largest first)."""
    columns = [*SNAPSHOT_KEYS, "closed", "now", "diff"]
    if closed.empty:
        return pd.DataFrame(columns=columns)
    now = attributed[attributed["month"] == month].groupby(SNAPSHOT_KEYS)["amount"].sum()
    before = closed.groupby(SNAPSHOT_KEYS)["amount"].sum()
    table = pd.concat([before.rename("closed"), now.rename("now")], axis=1).fillna(0.0)
    table["diff"] = table["now"] - table["closed"]
    table = table[table["diff"].abs() >= CENT].reset_index()
    return table[columns].sort_values("diff", key=lambda c: c.abs(), ascending=False,
                                      ignore_index=True)


# --- exports ----------------------------------------------------------------------------------


def workbook(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    """An XLSX file with one sheet per entry (sheet names cut to Excel's 31 characters); a
    text cell that starts like a formula is quoted (:func:`orgscope.untrusted.safe_frame`),
    so a team or usage type written as ``=HYPERLINK(...)`` stays text."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            safe_frame(frame).to_excel(writer, sheet_name=name[:31], index=False)
            sheet = writer.sheets[name[:31]]
            for column in sheet.columns:
                width = max(len(str(cell.value or "")) for cell in column)
                sheet.column_dimensions[column[0].column_letter].width = min(width + 2, 60)
    return buffer.getvalue()
