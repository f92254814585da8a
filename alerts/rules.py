"""Alert rules: pure functions from stored frames to the conditions that hold now.

Nothing here reads the store or the clock (:mod:`alerts.step` is the I/O edge). Each rule of
``[alerts.rules]`` (docs/alerts.md) turns its input into :class:`Condition` objects, one per
thing that is wrong, each with a stable key, its labels, a one-line summary and the numbers.

Inputs that could not be read are passed as None: the rules reading them then *hold* their
alerts (:attr:`Evaluation.held`), so a store hiccup neither resolves nor fires anything.
Likewise a rule whose verdict is STALE (its account unreachable or its metrics not read)
holds the alerts about that rule: nothing is known about it, which is not the same as "fixed".
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.access import UNREACHABLE_PREFIX, denied_action, denied_code
from orgscope.config import AlertRuleConfig, Config
from orgscope.datasets import MAINTENANCE_PREFIX
from orgscope.ownership import RuleKey

log = logging.getLogger(__name__)

#: Alert names, in the order docs/alerts.md lists them.
ALERT_NAMES: tuple[str, ...] = (
    "rule_disabled", "rule_silent", "failed_invocations", "dlq_messages", "throttled",
    "service_errors", "service_latency", "cost_anomaly", "cost_forecast",
    "account_unreachable", "heal_maintenance")
#: Alerts about one EventBridge rule, judged from its ``rule_health`` verdict.
RULE_ALERTS: tuple[str, ...] = ("rule_disabled", "rule_silent", "failed_invocations",
                                "dlq_messages", "throttled")
#: Alerts whose messages are pages (a person must act), not ordinary alerts.
PAGE_ALERTS: frozenset[str] = frozenset({"heal_maintenance"})


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
    #: disabled_since from the inventory's history (orgscope.rule_history.HISTORY_SQL). A rule never
    #: seen ENABLED was created disabled on purpose: no rule_disabled alert. Empty: no history
    #: yet (every DISABLED rule is reported); None: could not be read (rule_disabled and
    #: heal_maintenance are held).
    disabled: pd.DataFrame | None = field(default_factory=pd.DataFrame)
    #: {(account_id, region, bus, rule): team} for rules whose own team tag names their team
    #: (:func:`orgscope.ownership.rule_teams`): it wins over the account's team.
    rule_teams: Mapping[RuleKey, str] = field(default_factory=dict)


# --- helpers -----------------------------------------------------------------------------------


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:.1f}"


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _labels(accounts: Mapping[str, AccountInfo], account_id: str | None,
            **extra: str | None) -> dict[str, str | None]:
    info = accounts.get(account_id) if account_id else None
    labels: dict[str, str | None] = {
        "account_id": account_id, "account_name": info.name if info else None,
        "region": None, "team": info.team if info else None, "bus": None, "rule": None,
        "service": None}
    labels.update(extra)
    return labels


def _condition(  # noqa: PLR0917 - a Condition's parts, in the order they read
        name: str, rule: AlertRuleConfig, labels: dict[str, str | None],
        identity: tuple[str, ...], summary: str, details: Mapping[str, Any]) -> Condition:
    return Condition(alert_name=name, severity=rule.severity, for_=rule.for_,
                     labels={"alert_name": name, "severity": rule.severity, **labels},
                     identity=identity, summary=summary, details=dict(details))


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _reasons(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


# --- rules from rule_health ------------------------------------------------------------------

RULE_IDENTITY = ("account_id", "region", "bus", "rule")


def _history(disabled: pd.DataFrame | None) -> dict[tuple[str, str, str, str], Any]:
    if disabled is None or disabled.empty:
        return {}
    return {(str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"])): r
            for r in disabled.to_dict("records")}


def _stamp(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return f"{pd.Timestamp(value).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def _disabled(row: Mapping[Any, Any], history: Mapping[tuple[str, str, str, str], Any]
              ) -> tuple[str, dict[str, Any]] | None:
    """(summary tail, numbers) of a DISABLED rule, or None when the inventory's history shows
    it was never ENABLED (a rule without history is reported: nothing says it is meant)."""
    past = history.get((str(row["account_id"]), str(row["region"]), str(row["bus"]),
                        str(row["rule"])))
    if past is None:
        return "", {}
    was, since = _stamp(past.get("last_enabled_at")), _stamp(past.get("disabled_since"))
    if was is None:
        return None  # created disabled: somebody's deliberate choice
    return (f" since {since} (ENABLED at {was})",
            {"last_enabled_at": was, "disabled_since": since})


def rule_conditions(health: pd.DataFrame, config: Config,
                    accounts: Mapping[str, AccountInfo],
                    disabled: pd.DataFrame | None,
                    rule_teams: Mapping[RuleKey, str] | None = None,
                    ) -> tuple[list[Condition], set[str]]:
    """Conditions of the five rule alerts from the latest verdicts, and the held prefixes.

    Numbers come from each verdict's details: ``fired`` (every verdict that applied),
    ``metrics`` (window totals), ``dlq`` (each target DLQ's depth and growth), ``matched``
    (count against the baseline). A STALE rule holds its metric alerts; ``rule_disabled``
    (the inventory's word) is held only when the account could not be read. A rule's own team
    tag (``rule_teams``) labels and routes it instead of its account's team. A rule never seen
    ENABLED (``disabled``: the inventory history of the DISABLED rules) raises no
    ``rule_disabled``: it was created disabled on purpose. ``disabled`` None (it could not be
    read) holds ``rule_disabled``: nothing tells the two apart.
    """
    rules, cfg, out = config.alerts.rules, config.health, []
    held: set[str] = set()
    window = _span(cfg.window)
    history = _history(disabled)
    for row in health.to_dict("records"):
        details: dict[str, Any] = json.loads(row["details"]) if row.get("details") else {}
        fired = set(details.get("fired") or [row["verdict"]])
        parts = [row["account_id"], row["region"], row["bus"], row["rule"]]
        labels = _labels(accounts, row["account_id"], region=row["region"], bus=row["bus"],
                         rule=row["rule"])
        owner = (rule_teams or {}).get(
            (str(row["account_id"]), str(row["region"]), str(row["bus"]), str(row["rule"])))
        if owner:
            labels["team"] = owner
        where = f"rule {row['rule']} (bus {row['bus']}, {row['account_id']}/{row['region']})"
        base = {"verdict": row["verdict"], "reasons": _reasons(row.get("reasons")),
                "evaluated_at": str(row.get("evaluated_at"))}
        unreachable = bool((details.get("stale") or {}).get("account"))
        if unreachable or (disabled is None and "DISABLED" in fired):
            held.add(alert_key("rule_disabled", parts))
        elif rules.rule_disabled.enabled and "DISABLED" in fired:
            found = _disabled(row, history)
            if found is not None:
                out.append(_condition(
                    "rule_disabled", rules.rule_disabled, labels, RULE_IDENTITY,
                    f"{where} is DISABLED{found[0]}: it matches no events",
                    {**base, **found[1]}))
        if "STALE" in fired:
            held.update(alert_key(name, parts) for name in RULE_ALERTS
                        if name != "rule_disabled")
            continue
        metrics = details.get("metrics") or {}
        if rules.rule_silent.enabled and "SILENT" in fired:
            matched = details.get("matched") or {}
            count, expected = _float(matched.get("count")), _float(matched.get("expected"))
            out.append(_condition(
                "rule_silent", rules.rule_silent, labels, RULE_IDENTITY,
                f"{where} matched {_num(count)} events in {window}; usually {_num(expected)}",
                {**base, "matched": count, "expected": expected,
                 "method": matched.get("method")}))
        failed = _float(metrics.get("FailedInvocations"))
        dropped = _float(metrics.get("DeadLetterInvocations")) + \
            _float(metrics.get("InvocationsFailedToBeSentToDlq"))
        if rules.failed_invocations.enabled and \
                max(failed, dropped) >= cfg.failed_invocations:
            invocations = _float(metrics.get("Invocations"))
            text = f"{where}: {_num(failed)} failed invocations of {_num(invocations)} in " \
                   f"{window}"
            if dropped:
                text += f"; {_num(dropped)} events lost (no DLQ or DLQ send failed)"
            out.append(_condition("failed_invocations", rules.failed_invocations, labels,
                                  RULE_IDENTITY, text,
                                  {**base, "failed": failed, "invocations": invocations,
                                   "lost": dropped}))
        if rules.dlq_messages.enabled:
            queues = [q for q in details.get("dlq") or [] if q.get("read", True)]
            bad = [q for q in queues
                   if _float(q.get("messages")) >= float(config.alerts.dlq_depth)
                   or _float(q.get("growth")) >= float(cfg.dlq_growth)]
            if bad:
                worst = max(bad, key=lambda q: _float(q.get("messages")))
                queue = str(worst["queue_arn"]).rsplit(":", 1)[-1]
                more = f" (and {len(bad) - 1} more queues)" if len(bad) > 1 else ""
                out.append(_condition(
                    "dlq_messages", rules.dlq_messages, labels, RULE_IDENTITY,
                    f"{where}: dead-letter queue {queue} holds "
                    f"{_num(_float(worst.get('messages')))} messages "
                    f"({_float(worst.get('growth')):+,.0f} in {window}){more}",
                    {**base, "queues": bad}))
        throttled = _float(metrics.get("ThrottledRules"))
        if rules.throttled.enabled and throttled >= cfg.throttled:
            out.append(_condition("throttled", rules.throttled, labels, RULE_IDENTITY,
                                  f"{where} was throttled {_num(throttled)} times in {window}",
                                  {**base, "throttled": throttled}))
    return out, held


# --- traces ----------------------------------------------------------------------------------

SERVICE_IDENTITY = ("account_id", "service")


def service_conditions(name: str, latency: pd.DataFrame, config: Config,
                       accounts: Mapping[str, AccountInfo]) -> list[Condition]:
    """``service_errors`` or ``service_latency`` from one window's percentiles per service
    and account (rows with fewer than ``min_spans`` entry spans are not judged)."""
    rules = config.alerts.rules
    rule = rules.service_errors if name == "service_errors" else rules.service_latency
    if not rule.enabled or latency.empty:
        return []
    out = []
    window = _span(rule.window)
    for row in latency.to_dict("records"):
        count = int(row["count"])
        if count < rule.min_spans:
            continue
        labels = _labels(accounts, str(row["account_id"]), service=str(row["service"]),
                         region=row.get("region"))
        numbers: dict[str, Any] = {"count": count, "p50_ms": _float(row.get("p50_ms")),
                   "p95_ms": _float(row.get("p95_ms")), "p99_ms": _float(row.get("p99_ms")),
                   "error_rate": _float(row.get("error_rate")),
                   "window_start": str(row.get("bucket_start")), "window": window}
        where = f"service {row['service']} ({row['account_id']})"
        if name == "service_errors" and numbers["error_rate"] >= rules.service_errors.error_rate:
            out.append(_condition(
                name, rule, labels, SERVICE_IDENTITY,
                f"{where}: {numbers['error_rate']:.1%} of {count} requests failed in {window} "
                f"(threshold {rules.service_errors.error_rate:.0%})", numbers))
        if name == "service_latency" and numbers["p99_ms"] >= rules.service_latency.p99_ms:
            out.append(_condition(
                name, rule, labels, SERVICE_IDENTITY,
                f"{where}: p99 latency {numbers['p99_ms']:,.0f} ms over {count} requests in "
                f"{window} (threshold {rules.service_latency.p99_ms:,.0f} ms)", numbers))
    return out


# --- cost ------------------------------------------------------------------------------------


def anomaly_conditions(anomalies: pd.DataFrame, config: Config,
                       accounts: Mapping[str, AccountInfo]) -> list[Condition]:
    """One ``cost_anomaly`` per team and service with an anomaly in the recent days given
    (the newest day's numbers)."""
    rule = config.alerts.rules.cost_anomaly
    if not rule.enabled or anomalies.empty:
        return []
    out = []
    newest = anomalies.sort_values("date", ascending=False).drop_duplicates(["team", "service"])
    for row in newest.to_dict("records"):
        account = str(row["account_id"]) if row.get("account_id") else None
        labels = _labels(accounts, account, service=str(row["service"]))
        labels["team"] = str(row["team"])
        amount, baseline = _float(row["amount"]), _float(row["baseline"])
        out.append(_condition(
            "cost_anomaly", rule, labels, ("team", "service"),
            f"team {row['team']}: {row['service']} cost ${amount:,.2f} on {row['date']}, "
            f"usually ${baseline:,.2f} (+${_float(row['excess']):,.2f}, z {_float(row['z']):.1f};"
            f" mostly {row['usage_type']} in {account})",
            {"date": str(row["date"]), "amount": amount, "baseline": baseline,
             "excess": _float(row["excess"]), "z": _float(row["z"]),
             "usage_type": str(row["usage_type"])}))
    return out


def forecast_conditions(forecast: pd.DataFrame, month: str, config: Config) -> list[Condition]:
    """One ``cost_forecast`` per team whose month-end forecast is over its budget (or, with
    ``status = "at risk"``, whose 90 % interval reaches it)."""
    rule = config.alerts.rules.cost_forecast
    if not rule.enabled or forecast.empty:
        return []
    wanted = {"over"} if rule.status == "over" else {"over", "at risk"}
    out = []
    for row in forecast.to_dict("records"):
        if row.get("status") not in wanted:
            continue
        budget, value = _float(row["budget"]), _float(row["forecast"])
        labels = _labels({}, None)
        labels["team"] = str(row["team"])
        out.append(_condition(
            "cost_forecast", rule, labels, ("team",),
            f"team {row['team']}: {month} forecast ${value:,.0f} "
            f"(90 % ${_float(row['low']):,.0f}-${_float(row['high']):,.0f}) against a budget of "
            f"${budget:,.0f} ({row['status']})",
            {"month": month, "forecast": value, "low": _float(row["low"]),
             "high": _float(row["high"]), "budget": budget, "to_date": _float(row["to_date"]),
             "status": row["status"]}))
    return out


# --- reachability ----------------------------------------------------------------------------


def unreachable_conditions(runs: pd.DataFrame, config: Config,
                           accounts: Mapping[str, AccountInfo]) -> list[Condition]:
    """``account_unreachable`` for each account whose last ``unreachable_intervals`` cycles
    (runs of the reachability collector, grouped by run_id) all failed in every region."""
    rule, needed = config.alerts.rules.account_unreachable, config.alerts.unreachable_intervals
    if not rule.enabled or runs.empty:
        return []
    frame = runs.assign(started_at=pd.to_datetime(runs["started_at"], utc=True),
                        ok=runs["status"] == "ok")
    cycles = frame.groupby(["account_id", "run_id"], sort=False).agg(
        started_at=("started_at", "min"), ok=("ok", "any"), error=("error", "last"))
    out = []
    for account_id, group in cycles.reset_index().groupby("account_id", sort=True):
        ordered = group.sort_values("started_at", ascending=False)
        failed = 0
        for ok in ordered["ok"]:
            if ok:
                break
            failed += 1
        if failed < needed:
            continue
        last_ok = ordered.loc[ordered["ok"], "started_at"]
        error = str(ordered["error"].iloc[0])
        labels = _labels(accounts, str(account_id))
        if error.startswith(UNREACHABLE_PREFIX):
            access, why = "unreachable", error[len(UNREACHABLE_PREFIX):]
        elif denied_code(error) and denied_action(error).endswith("AssumeRole"):
            access, why = "unreachable", error
        elif denied_code(error):
            access = "refused"
            why = f"the read role was assumed but may not {denied_action(error)}: {error}"
        else:
            access, why = "error", error
        out.append(_condition(
            "account_unreachable", rule, labels, ("account_id",),
            f"account {account_id} ({labels['account_name'] or 'unnamed'}) could not be read "
            f"in its last {failed} collection cycles ({access}): {why}",
            {"failed_cycles": failed, "error": error, "access": access,
             "last_ok": last_ok.iloc[0].isoformat() if len(last_ok) else None,
             "last_attempt": ordered["started_at"].iloc[0].isoformat()}))
    return out


# --- auto-heal -------------------------------------------------------------------------------


def disabled_share(health: pd.DataFrame,
                   disabled: pd.DataFrame | None = None) -> tuple[int, int]:
    """(rules DISABLED after having been ENABLED, rules) in the latest verdicts: the share
    auto-heal's maintenance check counts (a rule created disabled is not maintenance)."""
    if health.empty:
        return 0, 0
    history = _history(disabled)
    count = 0
    for row in health.to_dict("records"):
        details = json.loads(row["details"]) if row.get("details") else {}
        if row["verdict"] == "DISABLED" or "DISABLED" in (details.get("fired") or []):
            count += _disabled(row, history) is not None
    return count, len(health)


def maintenance_conditions(heal: pd.DataFrame, health: pd.DataFrame | None, now: datetime,
                           config: Config, disabled: pd.DataFrame | None = None
                           ) -> list[Condition]:
    """``heal_maintenance`` (a page): auto-heal skipped for planned maintenance (its skip row,
    written once per spell, within the rule's window) and more than
    ``heal.maintenance_disabled_share`` of the rules are still DISABLED. A person must decide
    whether they are meant to be; it resolves when the share falls back."""
    rule = config.alerts.rules.heal_maintenance
    if not rule.enabled or heal.empty:
        return []
    at = pd.to_datetime(heal["at"], utc=True)
    recent = heal[(at >= pd.Timestamp(now) - pd.Timedelta(rule.window))
                  & (heal["action"] == "skip")
                  & heal["reason"].astype(str).str.startswith(MAINTENANCE_PREFIX)]
    if recent.empty:
        return []
    off, total = disabled_share(health, disabled) if health is not None else (0, 0)
    if health is not None and (total == 0 or
                               off / total <= config.heal.maintenance_disabled_share):
        return []
    newest = recent.assign(at=pd.to_datetime(recent["at"], utc=True)).sort_values("at").iloc[-1]
    return [_condition(
        "heal_maintenance", rule, _labels({}, None), (),
        str(newest["reason"]),
        {"reason": str(newest["reason"]), "at": newest["at"].isoformat(),
         "heal_id": str(newest["id"]), "dry_run": bool(newest["dry_run"]),
         "disabled": off, "rules": total})]


# --- all of them -----------------------------------------------------------------------------


def _if_read(frame: pd.DataFrame | None, name: str, held: set[str],
             judge: Any) -> list[Condition]:
    """``judge(frame)``, or nothing and ``name`` held when the frame could not be read."""
    if frame is None:
        held.add(name)
        return []
    found: list[Condition] = judge(frame)
    return found


def evaluate(inputs: AlertInputs, config: Config, now: datetime, month: str) -> Evaluation:
    """Every enabled rule over ``inputs`` at ``now`` (``month``: the forecast's month)."""
    conditions: list[Condition] = []
    held: set[str] = set()
    accounts = inputs.accounts
    if inputs.rule_health is None:
        held.update(RULE_ALERTS)
    else:
        found, stale = rule_conditions(inputs.rule_health, config, accounts, inputs.disabled,
                                       inputs.rule_teams)
        conditions += found
        held |= stale
    for name in ("service_errors", "service_latency"):
        conditions += _if_read(inputs.latency.get(name), name, held,
                               lambda f, n=name: service_conditions(n, f, config, accounts))
    conditions += _if_read(inputs.anomalies, "cost_anomaly", held,
                           lambda f: anomaly_conditions(f, config, accounts))
    conditions += _if_read(inputs.forecast, "cost_forecast", held,
                           lambda f: forecast_conditions(f, month, config))
    conditions += _if_read(inputs.runs, "account_unreachable", held,
                           lambda f: unreachable_conditions(f, config, accounts))
    # its share counts only rules disabled after having been ENABLED: it needs the history
    conditions += _if_read(None if inputs.disabled is None else inputs.heal_actions,
                           "heal_maintenance", held,
                           lambda f: maintenance_conditions(f, inputs.rule_health, now, config,
                                                            inputs.disabled))
    keys = [c.key for c in conditions]
    if len(keys) != len(set(keys)):
        raise ValueError("alert rules produced one key twice: "
                         f"{sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return Evaluation(conditions=conditions, held=frozenset(held))
