"""Rule verdicts on the Event-flow page: the latest health evaluation of every rule in scope,
their colours and wording, counts, the heatmap's cells, the export and the rule picker's keys
and labels."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, text_list
from orgscope.datasets import VERDICTS
from orgscope.ownership import resource_team
from orgscope.store import Store
from orgscope.untrusted import plotly_text

#: One colour per verdict, used by every chart, table and headline on the page.
VERDICT_COLOURS: dict[str, str] = {
    "OK": "#2e9e6b",
    "DEGRADED": "#e0a030",
    "SILENT": "#7b61ff",
    "FAILING": "#d6453d",
    "DISABLED": "#9aa0a6",
    "STALE": "#4a4f55",
}
#: A rule in the inventory that the health model has not judged yet.
NO_VERDICT = "NO VERDICT"
NO_VERDICT_COLOUR = "#e8eaed"
#: Streamlit Markdown colour names for the headline labels (closest to VERDICT_COLOURS).
VERDICT_MARKDOWN: dict[str, str] = {
    "OK": "green",
    "DEGRADED": "orange",
    "SILENT": "violet",
    "FAILING": "red",
    "DISABLED": "gray",
    "STALE": "gray",
}
#: What each verdict means, for headline tooltips and docs.
VERDICT_HELP: dict[str, str] = {
    "OK": "Matching at its usual rate and delivering.",
    "DEGRADED": "Delivering, but throttled, retrying or slower than usual.",
    "SILENT": "Enabled but matching far below its usual rate for this hour of the week "
    "(a broken pattern), or its producer's PutEvents fail.",
    "FAILING": "Invocations fail or its dead-letter queue grows: events are being lost.",
    "DISABLED": "The rule is disabled: it delivers nothing.",
    "STALE": "orgscope could not read this rule's account or metrics recently.",
}
#: Most urgent first: the order of the rule picker and the default selection.
URGENCY: tuple[str, ...] = ("FAILING", "SILENT", "DISABLED", "DEGRADED", "STALE", "OK")


@dataclass(frozen=True)
class RuleKey:
    """One rule in one account and region."""

    account_id: str
    region: str
    bus: str
    rule: str

    def encode(self) -> str:
        """A string for a widget value (rule names cannot contain '|')."""
        return "|".join((self.account_id, self.region, self.bus, self.rule))

    @classmethod
    def decode(cls, text: str) -> RuleKey:
        account_id, region, bus, rule = text.split("|", 3)
        return cls(account_id, region, bus, rule)


#: The query parameters of a link to one rule: what alerts/slack.py puts in an alert's
#: Event-flow button.
RULE_LINK_PARAMS = ("account", "region", "bus", "rule")


def linked_rule(keys: Sequence[RuleKey], params: Mapping[str, str | None]) -> RuleKey | None:
    """The rule a link names among ``keys``: ``rule``, narrowed by ``account``, ``region``
    and ``bus`` when the link gives them; None when the link names no rule or none of
    ``keys`` matches it."""
    rule = params.get("rule")
    if not rule:
        return None
    for key in keys:
        if key.rule == rule and all(
                not params.get(name) or params.get(name) == value
                for name, value in (("account", key.account_id), ("region", key.region),
                                    ("bus", key.bus))):
            return key
    return None


def rule_verdicts(store: Store, filters: Filters, tag_key: str = "Team",
                  known: Collection[str] | None = None) -> pd.DataFrame:
    """The latest verdict of every rule in scope, most urgent first.

    Rules come from the latest ``rule_health`` evaluation; inventory rules the health model has
    not judged yet are added with verdict :data:`NO_VERDICT`. A rule's team is its own
    ``tag_key`` tag naming one of the ``known`` teams, else its account's
    (:func:`orgscope.ownership.resource_team`); the team
    filter selects rules by that team, so a rule tagged ``Team=ops`` on the platform team's
    central bus is ops's.

    Columns: account_id, account (name; the id when unknown), team, region, bus, rule, verdict,
    reasons (list of sentences), details (JSON text), evaluated_at, state (inventory state or
    None), urgency (0 = most urgent).
    """
    sql = f"""
    WITH scope AS (
        SELECT account_id, name, team FROM accounts
        WHERE {in_list("account_id")}
    ),
    judged AS (
        SELECT h.account_id, h.region, h.bus, h.rule, h.verdict, h.reasons, h.details,
               h.evaluated_at
        FROM rule_health h
        WHERE {in_list("h.region")}
    ),
    listed AS (
        SELECT r.account_id, r.region, r.bus, r.rule, r.state, r.tags FROM rules r
        WHERE {in_list("r.region")}
    ),
    merged AS (
        SELECT coalesce(j.account_id, l.account_id) AS account_id,
               coalesce(j.region, l.region) AS region,
               coalesce(j.bus, l.bus) AS bus,
               coalesce(j.rule, l.rule) AS rule,
               coalesce(j.verdict, ?) AS verdict,
               j.reasons, j.details, j.evaluated_at, l.state, l.tags
        FROM judged j FULL OUTER JOIN listed l
          ON j.account_id = l.account_id AND j.region = l.region AND j.bus = l.bus
             AND j.rule = l.rule
    )
    SELECT m.account_id, coalesce(s.name, m.account_id) AS account,
           s.team AS account_team, m.region, m.bus, m.rule, m.verdict,
           m.reasons, m.details, m.evaluated_at, m.state, m.tags
    FROM merged m LEFT JOIN scope s USING (account_id)
    -- rules of accounts the store has no reachability row for are kept unless narrowed
    WHERE s.account_id IS NOT NULL
       OR (len(?::VARCHAR[]) = 0
           AND m.account_id NOT IN (SELECT account_id FROM accounts))
    """
    params: list[Any] = [
        *list_params(filters.account_ids),
        *list_params(filters.regions),
        *list_params(filters.regions),
        NO_VERDICT,
        list(filters.account_ids),
    ]
    frame = store.query(sql, params)
    teams = [resource_team(tags, account_team if isinstance(account_team, str) else None,
                           tag_key, known) or "(unknown)"
             for tags, account_team in zip(frame["tags"], frame["account_team"], strict=True)]
    frame = frame.drop(columns=["tags", "account_team"])
    frame.insert(2, "team", pd.Series(teams, index=frame.index, dtype=object))
    if filters.teams:
        frame = frame[frame["team"].isin(list(filters.teams))]
    order = {verdict: index for index, verdict in enumerate((*URGENCY, NO_VERDICT))}
    frame["urgency"] = frame["verdict"].map(lambda v: order.get(v, len(order))).astype("int64")
    frame["reasons"] = frame["reasons"].map(text_list)
    frame = frame.sort_values(["urgency", "account", "region", "bus", "rule"], kind="stable")
    return frame.reset_index(drop=True)


def verdict_counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """Rules per verdict, every verdict of :data:`VERDICTS` present (0 when none)."""
    counts = verdicts["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}


def rule_keys(verdicts: pd.DataFrame) -> list[RuleKey]:
    """The rules of :func:`rule_verdicts`, in its (most urgent first) order."""
    return [
        RuleKey(str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"]))
        for r in verdicts[["account_id", "region", "bus", "rule"]].to_dict("records")
    ]


def verdict_matrix(verdicts: pd.DataFrame, rows: str = "account") -> pd.DataFrame:
    """One cell per (row, rule) for the heatmap: the most urgent verdict and its reasons.

    ``rows`` is "account" or "team". A rule that exists in several regions (or, by team, in
    several accounts) gets the most urgent of its verdicts; the hover lists each.

    Columns: row, rule, verdict, urgency, hover (HTML for Plotly: every name and reason in
    it escaped with :func:`orgscope.untrusted.plotly_text`).
    """
    if rows not in ("account", "team"):
        raise ValueError(f"rows must be 'account' or 'team', not {rows!r}")
    cells = []
    for (row, rule), group in verdicts.groupby([rows, "rule"], sort=False):
        worst = group.sort_values("urgency").iloc[0]
        lines = [f"<b>{plotly_text(rule)}</b> · {plotly_text(row)}"]
        for record in group.sort_values("urgency").to_dict("records"):
            where = (f"{plotly_text(record['account'])} {plotly_text(record['region'])} · bus "
                     f"{plotly_text(record['bus'])}")
            lines.append(f"<b>{plotly_text(record['verdict'])}</b> — {where}")
            lines.extend(f"• {plotly_text(reason)}" for reason in record["reasons"][:4])
        cells.append(
            {"row": str(row), "rule": str(rule), "verdict": str(worst["verdict"]),
             "urgency": int(worst["urgency"]), "hover": "<br>".join(lines)}
        )
    return pd.DataFrame(cells, columns=["row", "rule", "verdict", "urgency", "hover"])


def verdict_export(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict table as it is downloaded: reasons joined with ' | '."""
    columns = ["account", "account_id", "team", "region", "bus", "rule", "verdict", "reasons",
               "evaluated_at", "state"]
    return verdicts[columns].assign(reasons=verdicts["reasons"].map(" | ".join))


def labels_for(keys: Iterable[RuleKey], verdicts: pd.DataFrame) -> dict[str, str]:
    """Widget labels for rule keys: 'FAILING · rule — account (region)'."""
    wanted = {key.encode() for key in keys}
    result = {}
    for row in verdicts.to_dict("records"):
        key = RuleKey(str(row["account_id"]), str(row["region"]), str(row["bus"]),
                      str(row["rule"])).encode()
        if key in wanted and key not in result:
            result[key] = f"{row['verdict']} · {row['rule']} — {row['account']} ({row['region']})"
    return result
