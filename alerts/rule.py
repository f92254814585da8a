"""What an alert rule is: one object (name, title, settings, what it reads, evaluate).

An :class:`AlertRule` names itself (its ``[alerts.rules.NAME]`` section and the first part of
its alerts' keys), says how its messages are titled and which dashboard page they link to,
declares its settings model, picks the one frame of :class:`AlertInputs` it judges, and turns
that frame into :class:`Condition` objects: one per thing that is wrong, each with a stable
key, its labels, a one-line summary and the numbers. The rules themselves are in
:mod:`alerts.rules`; docs/architecture.md, "Where does X go", walks adding one.

Nothing here reads the store or the clock (:mod:`alerts.step` is the I/O edge). A frame that
could not be read is None: the rule's alerts are then *held* (:attr:`Evaluation.held`), so a
store hiccup neither resolves nor fires anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

import pandas as pd

from orgscope.config import AlertRuleConfig, Config
from orgscope.ownership import RuleKey

SettingsT = TypeVar("SettingsT", bound=AlertRuleConfig)

#: The dashboard pages an alert's message can link to.
Page = Literal["event_flow", "traces", "cost", "alerts", "schemas"]


@dataclass(frozen=True)
class AccountInfo:
    """What the labels need about an account."""

    name: str
    team: str


@dataclass(frozen=True)
class Condition:
    """Something wrong now: the input of the lifecycle (:mod:`alerts.lifecycle`).

    ``identity``: the label names whose values, after the alert name, make the key.
    """

    alert_name: str
    severity: str
    for_: timedelta
    labels: Mapping[str, str | None]
    identity: tuple[str, ...]
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return alert_key(self.alert_name, [self.labels.get(name) for name in self.identity])


def alert_key(alert_name: str, parts: Iterable[str | None]) -> str:
    """``alert_name/part/part/...`` (a missing part is ``-``)."""
    return "/".join([alert_name, *("-" if p is None else str(p) for p in parts)])


@dataclass(frozen=True)
class Evaluation:
    """What the rules found: the conditions, and key prefixes whose alerts keep their state."""

    conditions: list[Condition]
    held: frozenset[str] = frozenset()

    def is_held(self, key: str) -> bool:
        return any(key == prefix or key.startswith(prefix + "/") for prefix in self.held)


@dataclass(frozen=True)
class AlertInputs:
    """The frames the rules read (None: could not be read, so those alerts are held).

    * ``rule_health``: the latest ``rule_health`` rows (verdict, reasons, details JSON);
    * ``runs``: recent ``runs`` of the reachability collector (run_id, account_id, region,
      started_at, status, error);
    * ``latency``: ``latency_percentiles`` rows of the traced services over each trace rule's
      window (bucket_start, service, account_id, count, p99_ms, error_rate), plus a
      ``region`` column; keyed by the rule name ('service_errors', 'service_latency');
    * ``anomalies``: cost anomalies (``orgscope.cost.anomalies.COLUMNS``) of recent days;
    * ``forecast``: this month's forecast per team (``orgscope.cost.forecast.COLUMNS``);
    * ``heal_actions``: recent ``heal_actions`` rows.
    """

    rule_health: pd.DataFrame | None
    runs: pd.DataFrame | None
    latency: Mapping[str, pd.DataFrame | None]
    anomalies: pd.DataFrame | None
    forecast: pd.DataFrame | None
    heal_actions: pd.DataFrame | None
    accounts: Mapping[str, AccountInfo]
    #: Per DISABLED rule (account_id, region, bus, rule): first_seen_at, last_enabled_at,
    #: disabled_since from the inventory's history (orgscope.rule_history.HISTORY_SQL). A
    #: rule never seen ENABLED was created disabled on purpose: no rule_disabled alert.
    #: Empty: no history yet (every DISABLED rule is reported); None: could not be read
    #: (rule_disabled and heal_maintenance are held).
    disabled: pd.DataFrame | None = field(default_factory=pd.DataFrame)
    #: {(account_id, region, bus, rule): team} for rules whose own team tag names their team
    #: (:func:`orgscope.ownership.rule_teams`): it wins over the account's team.
    rule_teams: Mapping[RuleKey, str] = field(default_factory=dict)
    #: Rules the newest discovered schema versions break (orgscope.schema_drift
    #: ``BREAK_COLUMNS``); empty: none (or no schemas yet); None: could not be read (held).
    schema_breaks: pd.DataFrame | None = field(default_factory=pd.DataFrame)

    @cached_property
    def verdicts(self) -> list[Verdict]:
        """``rule_health``'s rows parsed once (details JSON, labels) for every rule that judges
        them; empty when it could not be read."""
        return [] if self.rule_health is None else list(verdicts(self.rule_health, self))


def _reasons(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


@dataclass(frozen=True)
class Verdict:
    """One ``rule_health`` row as the rule alerts read it."""

    row: Mapping[Any, Any]
    details: Mapping[str, Any]
    #: Every verdict that applied (``details.fired``; the verdict alone for older rows).
    fired: frozenset[str]
    #: The rule's key parts (account_id, region, bus, rule).
    parts: list[str]
    labels: dict[str, str | None]
    #: 'rule R (bus B, account/region)'.
    where: str
    #: What every rule alert's details start with: verdict, reasons, evaluated_at.
    base: dict[str, Any]

    @property
    def stale(self) -> bool:
        return "STALE" in self.fired


def verdicts(health: pd.DataFrame, inputs: AlertInputs) -> Iterator[Verdict]:
    """Each verdict with its labels: its account's, and its own team tag's team when it names
    one (``inputs.rule_teams``). Read through :attr:`AlertInputs.verdicts`, once per
    evaluation, by the five rule alerts."""
    for row in health.to_dict("records"):
        details: dict[str, Any] = json.loads(row["details"]) if row.get("details") else {}
        labels = account_labels(inputs.accounts, row["account_id"], region=row["region"],
                                bus=row["bus"], rule=row["rule"])
        owner = inputs.rule_teams.get(
            (str(row["account_id"]), str(row["region"]), str(row["bus"]), str(row["rule"])))
        if owner:
            labels["team"] = owner
        yield Verdict(
            row=row, details=details,
            fired=frozenset(details.get("fired") or [row["verdict"]]),
            parts=[row["account_id"], row["region"], row["bus"], row["rule"]],
            labels=labels,
            where=f"rule {row['rule']} (bus {row['bus']}, {row['account_id']}/{row['region']})",
            base={"verdict": row["verdict"], "reasons": _reasons(row.get("reasons")),
                  "evaluated_at": str(row.get("evaluated_at"))})


@dataclass
class Found:
    """What one rule found: its conditions, and the key prefixes it holds."""

    conditions: list[Condition] = field(default_factory=list)
    held: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RuleContext(Generic[SettingsT]):
    """Everything a rule's ``evaluate`` may use besides its frame."""

    settings: SettingsT
    config: Config
    inputs: AlertInputs
    now: datetime
    #: The forecast's month ('YYYY-MM').
    month: str


@dataclass(frozen=True)
class AlertRule(Generic[SettingsT]):
    """One alert rule, describing itself."""

    name: str
    #: The message's title (Slack) and the rule's name in people's words.
    title: str
    #: The model of its ``[alerts.rules.NAME]`` section.
    settings: type[SettingsT]
    #: The frame it judges, picked from the inputs; None (not read) holds its alerts.
    reads: Callable[[AlertInputs], pd.DataFrame | None]
    evaluate: Callable[[pd.DataFrame, RuleContext[SettingsT]], Found]
    #: The dashboard page its messages link to, filtered to the alert.
    page: Page = "alerts"
    #: Its messages are pages (a person must act now, ``<!channel>``), not ordinary alerts.
    pages_on_call: bool = False

    def settings_in(self, config: Config) -> SettingsT:
        """This rule's section of ``config`` (TypeError when it is not of its model)."""
        found = config.alerts.rule(self.name)
        if not isinstance(found, self.settings):
            raise TypeError(f"[alerts.rules.{self.name}] is read as {type(found).__name__}, "
                            f"not {self.settings.__name__}")
        return found

    def condition(self, settings: SettingsT, labels: Mapping[str, str | None],
                  identity: tuple[str, ...], summary: str,
                  details: Mapping[str, Any]) -> Condition:
        """A condition of this rule, with its severity and ``for`` from ``settings``."""
        return Condition(alert_name=self.name, severity=settings.severity, for_=settings.for_,
                         labels={"alert_name": self.name, "severity": settings.severity,
                                 **labels},
                         identity=identity, summary=summary, details=dict(details))


def account_labels(accounts: Mapping[str, AccountInfo], account_id: str | None,
                   **extra: str | None) -> dict[str, str | None]:
    """Every label, with the account's name and team filled in from ``accounts``."""
    info = accounts.get(account_id) if account_id else None
    labels: dict[str, str | None] = {
        "account_id": account_id, "account_name": info.name if info else None,
        "region": None, "team": info.team if info else None, "bus": None, "rule": None,
        "service": None}
    labels.update(extra)
    return labels
