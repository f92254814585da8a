"""Every alert rule (docs/alerts.md): pure functions from stored frames to what is wrong now.

Each rule is one :class:`alerts.rule.AlertRule` object below: its name, title, settings
model, the frame it reads and its evaluate function; :data:`ALERT_RULES` lists them and
:func:`evaluate` runs them. A rule whose verdict is STALE (its account unreachable or its
metrics not read) holds the alerts about that rule: nothing is known about it, which is not
the same as "fixed".
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from alerts.rule import (
    AlertInputs,
    AlertRule,
    Evaluation,
    Found,
    RuleContext,
    Verdict,
    account_labels,
    alert_key,
)
from orgscope.access import UNREACHABLE_PREFIX, denied_action, denied_code
from orgscope.config import (
    AlertRuleConfig,
    Config,
    Duration,
    ForDuration,
    Severity,
    Share,
    format_interval,
)
from orgscope.datasets import MAINTENANCE_PREFIX

log = logging.getLogger(__name__)


# --- settings (one model per [alerts.rules.NAME] that has more than the common keys) --------


class CriticalAlertRule(AlertRuleConfig):
    severity: Severity = "critical"


class RuleSilentAlert(AlertRuleConfig):
    for_: ForDuration = Field(default=timedelta(minutes=10), alias="for")


class ThrottledAlert(AlertRuleConfig):
    for_: ForDuration = Field(default=timedelta(minutes=10), alias="for")


class ServiceErrorsAlert(AlertRuleConfig):
    for_: ForDuration = Field(default=timedelta(minutes=5), alias="for")
    error_rate: Share = 0.05
    min_spans: int = Field(default=20, ge=1)
    window: Duration = timedelta(minutes=15)


class ServiceLatencyAlert(AlertRuleConfig):
    for_: ForDuration = Field(default=timedelta(minutes=10), alias="for")
    p99_ms: float = Field(default=2000.0, gt=0)
    min_spans: int = Field(default=20, ge=1)
    window: Duration = timedelta(minutes=15)


class CostAnomalyAlert(AlertRuleConfig):
    days: int = Field(default=2, ge=1, le=31)


class CostForecastAlert(AlertRuleConfig):
    status: Literal["over", "at risk"] = "over"


class HealMaintenanceAlert(CriticalAlertRule):
    #: How far back auto-heal's maintenance skip counts (it is written once per spell).
    window: Duration = timedelta(days=1)


# --- helpers -----------------------------------------------------------------------------------


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:.1f}"


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


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
    it was never ENABLED (a rule without history is reported: nothing says it is meant). With
    a change event naming who disabled it (``disabled_by``, ``disabled_at``), the tail says so
    instead of "since"."""
    past = history.get((str(row["account_id"]), str(row["region"]), str(row["bus"]),
                        str(row["rule"])))
    if past is None:
        return "", {}
    was, since = _stamp(past.get("last_enabled_at")), _stamp(past.get("disabled_since"))
    if was is None:
        return None  # created disabled: somebody's deliberate choice
    who, when = past.get("disabled_by"), _stamp(past.get("disabled_at"))
    if isinstance(who, str) and who and when is not None:
        # the principal ARN is the monitored account's text: the sinks make it literal
        return (f", disabled by {who} at {when} (ENABLED at {was})",
                {"last_enabled_at": was, "disabled_since": since, "disabled_by": who,
                 "disabled_at": when})
    return (f" since {since} (ENABLED at {was})",
            {"last_enabled_at": was, "disabled_since": since})


def _rule_disabled(_health: pd.DataFrame, ctx: RuleContext[CriticalAlertRule]) -> Found:
    """A rule seen ENABLED earlier is DISABLED. Held when its account could not be read, or
    when the inventory's history (``inputs.disabled``) could not: nothing tells a rule created
    disabled from one switched off. ``_health`` is ``inputs.rule_health``, read through
    ``inputs.verdicts`` (parsed once for the five rule alerts)."""
    found, disabled = Found(), ctx.inputs.disabled
    history = _history(disabled)
    for verdict in ctx.inputs.verdicts:
        unreachable = bool((verdict.details.get("stale") or {}).get("account"))
        if unreachable or (disabled is None and "DISABLED" in verdict.fired):
            found.held.add(alert_key(RULE_DISABLED.name, verdict.parts))
        elif ctx.settings.enabled and "DISABLED" in verdict.fired:
            tail = _disabled(verdict.row, history)
            if tail is not None:
                found.conditions.append(RULE_DISABLED.condition(
                    ctx.settings, verdict.labels, RULE_IDENTITY,
                    f"{verdict.where} is DISABLED{tail[0]}: it matches no events",
                    {**verdict.base, **tail[1]}))
    return found


#: What a metric alert says of one verdict: (summary, numbers), or None when it is fine.
Judgement = tuple[str, dict[str, Any]] | None


def _metric_rule(_health: pd.DataFrame, ctx: RuleContext[Any], rule: AlertRule[Any],
                 judge: Callable[[Verdict, RuleContext[Any]], Judgement]) -> Found:
    """``judge`` over every verdict (``inputs.verdicts``: ``_health`` parsed once); a STALE
    verdict holds the rule's alert about it."""
    found = Found()
    for verdict in ctx.inputs.verdicts:
        if verdict.stale:
            found.held.add(alert_key(rule.name, verdict.parts))
            continue
        if not ctx.settings.enabled:
            continue
        judged = judge(verdict, ctx)
        if judged is not None:
            summary, numbers = judged
            found.conditions.append(rule.condition(ctx.settings, verdict.labels,
                                                   RULE_IDENTITY, summary,
                                                   {**verdict.base, **numbers}))
    return found


def _silent(verdict: Verdict, ctx: RuleContext[RuleSilentAlert]) -> Judgement:
    if "SILENT" not in verdict.fired:
        return None
    matched = verdict.details.get("matched") or {}
    count, expected = _float(matched.get("count")), _float(matched.get("expected"))
    return (f"{verdict.where} matched {_num(count)} events in "
            f"{format_interval(ctx.config.health.window)}; usually {_num(expected)}",
            {"matched": count, "expected": expected, "method": matched.get("method")})


def _failed(verdict: Verdict, ctx: RuleContext[CriticalAlertRule]) -> Judgement:
    metrics = verdict.details.get("metrics") or {}
    failed = _float(metrics.get("FailedInvocations"))
    dropped = _float(metrics.get("DeadLetterInvocations")) + \
        _float(metrics.get("InvocationsFailedToBeSentToDlq"))
    if max(failed, dropped) < ctx.config.health.failed_invocations:
        return None
    invocations = _float(metrics.get("Invocations"))
    text = f"{verdict.where}: {_num(failed)} failed invocations of {_num(invocations)} in " \
           f"{format_interval(ctx.config.health.window)}"
    if dropped:
        text += f"; {_num(dropped)} events lost (no DLQ or DLQ send failed)"
    return text, {"failed": failed, "invocations": invocations, "lost": dropped}


def _dlq(verdict: Verdict, ctx: RuleContext[AlertRuleConfig]) -> Judgement:
    config = ctx.config
    queues = [q for q in verdict.details.get("dlq") or [] if q.get("read", True)]
    bad = [q for q in queues
           if _float(q.get("messages")) >= float(config.alerts.dlq_depth)
           or _float(q.get("growth")) >= float(config.health.dlq_growth)]
    if not bad:
        return None
    worst = max(bad, key=lambda q: _float(q.get("messages")))
    queue = str(worst["queue_arn"]).rsplit(":", 1)[-1]
    more = f" (and {len(bad) - 1} more queues)" if len(bad) > 1 else ""
    window = format_interval(config.health.window)
    return (f"{verdict.where}: dead-letter queue {queue} holds "
            f"{_num(_float(worst.get('messages')))} messages "
            f"({_float(worst.get('growth')):+,.0f} in {window}){more}",
            {"queues": bad})


def _throttled(verdict: Verdict, ctx: RuleContext[ThrottledAlert]) -> Judgement:
    throttled = _float((verdict.details.get("metrics") or {}).get("ThrottledRules"))
    if throttled < ctx.config.health.throttled:
        return None
    return (f"{verdict.where} was throttled {_num(throttled)} times in "
            f"{format_interval(ctx.config.health.window)}", {"throttled": throttled})


# --- traces ----------------------------------------------------------------------------------

SERVICE_IDENTITY = ("account_id", "service")


def _services(latency: pd.DataFrame, ctx: RuleContext[Any], rule: AlertRule[Any],
              judge: Callable[[dict[str, Any], str, str, int], str | None]) -> Found:
    """One window's percentiles per service and account (rows with fewer than ``min_spans``
    entry spans are not judged); ``judge(numbers, where, window, count)`` gives the summary
    of a service over its threshold."""
    found = Found()
    if not ctx.settings.enabled or latency.empty:
        return found
    window = format_interval(ctx.settings.window)
    for row in latency.to_dict("records"):
        count = int(row["count"])
        if count < ctx.settings.min_spans:
            continue
        labels = account_labels(ctx.inputs.accounts, str(row["account_id"]),
                                service=str(row["service"]), region=row.get("region"))
        numbers: dict[str, Any] = {
            "count": count, "p50_ms": _float(row.get("p50_ms")),
            "p95_ms": _float(row.get("p95_ms")), "p99_ms": _float(row.get("p99_ms")),
            "error_rate": _float(row.get("error_rate")),
            "window_start": str(row.get("bucket_start")), "window": window}
        summary = judge(numbers, f"service {row['service']} ({row['account_id']})", window,
                        count)
        if summary is not None:
            found.conditions.append(rule.condition(ctx.settings, labels, SERVICE_IDENTITY,
                                                   summary, numbers))
    return found


def _service_errors(latency: pd.DataFrame, ctx: RuleContext[ServiceErrorsAlert]) -> Found:
    threshold = ctx.settings.error_rate

    def judge(numbers: dict[str, Any], where: str, window: str, count: int) -> str | None:
        if numbers["error_rate"] < threshold:
            return None
        return (f"{where}: {numbers['error_rate']:.1%} of {count} requests failed in {window} "
                f"(threshold {threshold:.0%})")
    return _services(latency, ctx, SERVICE_ERRORS, judge)


def _service_latency(latency: pd.DataFrame, ctx: RuleContext[ServiceLatencyAlert]) -> Found:
    threshold = ctx.settings.p99_ms

    def judge(numbers: dict[str, Any], where: str, window: str, count: int) -> str | None:
        if numbers["p99_ms"] < threshold:
            return None
        return (f"{where}: p99 latency {numbers['p99_ms']:,.0f} ms over {count} requests in "
                f"{window} (threshold {threshold:,.0f} ms)")
    return _services(latency, ctx, SERVICE_LATENCY, judge)


# --- cost ------------------------------------------------------------------------------------


def _cost_anomaly(anomalies: pd.DataFrame, ctx: RuleContext[CostAnomalyAlert]) -> Found:
    """One ``cost_anomaly`` per team and service with an anomaly in the recent days given
    (the newest day's numbers)."""
    found = Found()
    if not ctx.settings.enabled or anomalies.empty:
        return found
    newest = anomalies.sort_values("date", ascending=False).drop_duplicates(["team", "service"])
    for row in newest.to_dict("records"):
        account = str(row["account_id"]) if row.get("account_id") else None
        labels = account_labels(ctx.inputs.accounts, account, service=str(row["service"]))
        labels["team"] = str(row["team"])
        amount, baseline = _float(row["amount"]), _float(row["baseline"])
        found.conditions.append(COST_ANOMALY.condition(
            ctx.settings, labels, ("team", "service"),
            f"team {row['team']}: {row['service']} cost ${amount:,.2f} on {row['date']}, "
            f"usually ${baseline:,.2f} (+${_float(row['excess']):,.2f}, z {_float(row['z']):.1f};"
            f" mostly {row['usage_type']} in {account})",
            {"date": str(row["date"]), "amount": amount, "baseline": baseline,
             "excess": _float(row["excess"]), "z": _float(row["z"]),
             "usage_type": str(row["usage_type"])}))
    return found


def _cost_forecast(forecast: pd.DataFrame, ctx: RuleContext[CostForecastAlert]) -> Found:
    """One ``cost_forecast`` per team whose month-end forecast is over its budget (or, with
    ``status = "at risk"``, whose 90 % interval reaches it)."""
    found = Found()
    if not ctx.settings.enabled or forecast.empty:
        return found
    wanted = {"over"} if ctx.settings.status == "over" else {"over", "at risk"}
    for row in forecast.to_dict("records"):
        if row.get("status") not in wanted:
            continue
        budget, value = _float(row["budget"]), _float(row["forecast"])
        labels = account_labels({}, None)
        labels["team"] = str(row["team"])
        found.conditions.append(COST_FORECAST.condition(
            ctx.settings, labels, ("team",),
            f"team {row['team']}: {ctx.month} forecast ${value:,.0f} "
            f"(90 % ${_float(row['low']):,.0f}-${_float(row['high']):,.0f}) against a budget of "
            f"${budget:,.0f} ({row['status']})",
            {"month": ctx.month, "forecast": value, "low": _float(row["low"]),
             "high": _float(row["high"]), "budget": budget, "to_date": _float(row["to_date"]),
             "status": row["status"]}))
    return found


# --- schema drift ----------------------------------------------------------------------------


def _producer_text(producers: Any, accounts: Mapping[str, Any]) -> str:
    ids = [p for p in str(producers or "").split(",") if p]
    if not ids:
        return "producer account unknown"
    named = [f"{accounts[i].name} ({i})" if i in accounts else i for i in ids]
    return "producer account " + ", ".join(named)


def _break_text(row: Mapping[Any, Any]) -> str:
    what = (f"moved {row['field']} to {row['moved_to']}" if row["change"] == "moved" else
            f"retyped {row['field']} from {row['old_type']} to {row['new_type']}"
            if row["change"] == "retyped" else f"removed {row['field']}")
    return (f"{row['source']} \"{row['detail_type']}\" version {row['to_version']} {what} "
            f"(version {row['from_version']} had it as {row['old_type']}; the pattern tests it "
            f"for {row['expected']})")


def _schema_breaking_change(breaks: pd.DataFrame,
                            ctx: RuleContext[AlertRuleConfig]) -> Found:
    """One ``schema_breaking_change`` per rule whose pattern tests a field the newest
    discovered version of a detail-type it matches no longer sends (or sends with another
    type): the rule will go silent as the producer's release rolls out."""
    found = Found()
    if not ctx.settings.enabled or breaks.empty:
        return found
    for parts, rows in breaks.groupby(list(RULE_IDENTITY), sort=True):
        account, region, bus, rule = (str(p) for p in parts)
        records = rows.sort_values(["detail_type", "field"]).to_dict("records")
        labels = account_labels(ctx.inputs.accounts, account, region=region, bus=bus,
                                rule=rule)
        owner = ctx.inputs.rule_teams.get((account, region, bus, rule))
        if owner:
            labels["team"] = owner
        first = records[0]
        found.conditions.append(SCHEMA_BREAKING_CHANGE.condition(
            ctx.settings, labels, RULE_IDENTITY,
            f"rule {rule} (bus {bus}, {account}/{region}) will go silent: "
            + "; ".join(_break_text(r) for r in records)
            + f"; {_producer_text(first['producers'], ctx.inputs.accounts)}",
            {"breaks": [{key: (None if pd.isna(value) else str(value))
                         for key, value in r.items()} for r in records]}))
    return found


# --- reachability ----------------------------------------------------------------------------


def _account_unreachable(runs: pd.DataFrame, ctx: RuleContext[CriticalAlertRule]) -> Found:
    """``account_unreachable`` for each account whose last ``unreachable_intervals`` cycles
    (runs of the reachability collector, and the witnesses' runs that say something about the
    role: orgscope.access.reachability_runs_sql; grouped by run_id) all failed in every region."""
    found, needed = Found(), ctx.config.alerts.unreachable_intervals
    if not ctx.settings.enabled or runs.empty:
        return found
    frame = runs.assign(started_at=pd.to_datetime(runs["started_at"], utc=True),
                        ok=runs["status"] == "ok")
    cycles = frame.groupby(["account_id", "run_id"], sort=False).agg(
        started_at=("started_at", "min"), ok=("ok", "any"), error=("error", "last"))
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
        labels = account_labels(ctx.inputs.accounts, str(account_id))
        if error.startswith(UNREACHABLE_PREFIX):
            access, why = "unreachable", error[len(UNREACHABLE_PREFIX):]
        elif denied_code(error) and denied_action(error).endswith("AssumeRole"):
            access, why = "unreachable", error
        elif denied_code(error):
            access = "refused"
            why = f"the read role was assumed but may not {denied_action(error)}: {error}"
        else:
            access, why = "error", error
        found.conditions.append(ACCOUNT_UNREACHABLE.condition(
            ctx.settings, labels, ("account_id",),
            f"account {account_id} ({labels['account_name'] or 'unnamed'}) could not be read "
            f"in its last {failed} collection cycles ({access}): {why}",
            {"failed_cycles": failed, "error": error, "access": access,
             "last_ok": last_ok.iloc[0].isoformat() if len(last_ok) else None,
             "last_attempt": ordered["started_at"].iloc[0].isoformat()}))
    return found


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


def _heal_maintenance(heal: pd.DataFrame, ctx: RuleContext[HealMaintenanceAlert]) -> Found:
    """``heal_maintenance`` (a page): auto-heal skipped for planned maintenance (its skip row,
    written once per spell, within the rule's window) and more than
    ``heal.maintenance_disabled_share`` of the rules are still DISABLED. A person must decide
    whether they are meant to be; it resolves when the share falls back."""
    found, health = Found(), ctx.inputs.rule_health
    if not ctx.settings.enabled or heal.empty:
        return found
    at = pd.to_datetime(heal["at"], utc=True)
    recent = heal[(at >= pd.Timestamp(ctx.now) - pd.Timedelta(ctx.settings.window))
                  & (heal["action"] == "skip")
                  & heal["reason"].astype(str).str.startswith(MAINTENANCE_PREFIX)]
    if recent.empty:
        return found
    off, total = disabled_share(health, ctx.inputs.disabled) if health is not None else (0, 0)
    if health is not None and (total == 0 or
                               off / total <= ctx.config.heal.maintenance_disabled_share):
        return found
    newest = recent.assign(at=pd.to_datetime(recent["at"], utc=True)).sort_values("at").iloc[-1]
    found.conditions.append(HEAL_MAINTENANCE.condition(
        ctx.settings, account_labels({}, None), (), str(newest["reason"]),
        {"reason": str(newest["reason"]), "at": newest["at"].isoformat(),
         "heal_id": str(newest["id"]), "dry_run": bool(newest["dry_run"]),
         "disabled": off, "rules": total}))
    return found


# --- the rules -------------------------------------------------------------------------------


def _health(inputs: AlertInputs) -> pd.DataFrame | None:
    return inputs.rule_health


RULE_DISABLED: AlertRule[CriticalAlertRule] = AlertRule(
    "rule_disabled", "Rule disabled", CriticalAlertRule, _health, _rule_disabled,
    page="event_flow")
RULE_SILENT: AlertRule[RuleSilentAlert] = AlertRule(
    "rule_silent", "Rule silent", RuleSilentAlert, _health,
    lambda frame, ctx: _metric_rule(frame, ctx, RULE_SILENT, _silent), page="event_flow")
FAILED_INVOCATIONS: AlertRule[CriticalAlertRule] = AlertRule(
    "failed_invocations", "Failed invocations", CriticalAlertRule, _health,
    lambda frame, ctx: _metric_rule(frame, ctx, FAILED_INVOCATIONS, _failed),
    page="event_flow")
DLQ_MESSAGES: AlertRule[AlertRuleConfig] = AlertRule(
    "dlq_messages", "Dead-letter queue", AlertRuleConfig, _health,
    lambda frame, ctx: _metric_rule(frame, ctx, DLQ_MESSAGES, _dlq), page="event_flow")
THROTTLED: AlertRule[ThrottledAlert] = AlertRule(
    "throttled", "Throttling", ThrottledAlert, _health,
    lambda frame, ctx: _metric_rule(frame, ctx, THROTTLED, _throttled), page="event_flow")
SERVICE_ERRORS: AlertRule[ServiceErrorsAlert] = AlertRule(
    "service_errors", "Service errors", ServiceErrorsAlert,
    lambda inputs: inputs.latency.get("service_errors"), _service_errors, page="traces")
SERVICE_LATENCY: AlertRule[ServiceLatencyAlert] = AlertRule(
    "service_latency", "Service latency", ServiceLatencyAlert,
    lambda inputs: inputs.latency.get("service_latency"), _service_latency, page="traces")
COST_ANOMALY: AlertRule[CostAnomalyAlert] = AlertRule(
    "cost_anomaly", "Cost anomaly", CostAnomalyAlert, lambda inputs: inputs.anomalies,
    _cost_anomaly, page="cost")
COST_FORECAST: AlertRule[CostForecastAlert] = AlertRule(
    "cost_forecast", "Forecast over budget", CostForecastAlert,
    lambda inputs: inputs.forecast, _cost_forecast, page="cost")
SCHEMA_BREAKING_CHANGE: AlertRule[AlertRuleConfig] = AlertRule(
    "schema_breaking_change", "Schema change breaks a rule", AlertRuleConfig,
    lambda inputs: inputs.schema_breaks, _schema_breaking_change, page="schemas")
ACCOUNT_UNREACHABLE: AlertRule[CriticalAlertRule] = AlertRule(
    "account_unreachable", "Account unreachable", CriticalAlertRule,
    lambda inputs: inputs.runs, _account_unreachable, page="event_flow")
# its share counts only rules disabled after having been ENABLED: it needs the history
HEAL_MAINTENANCE: AlertRule[HealMaintenanceAlert] = AlertRule(
    "heal_maintenance", "Auto-heal stopped", HealMaintenanceAlert,
    lambda inputs: None if inputs.disabled is None else inputs.heal_actions,
    _heal_maintenance, pages_on_call=True)

#: Every alert rule, in the order docs/alerts.md lists them.
ALERT_RULES: tuple[AlertRule[Any], ...] = (
    RULE_DISABLED, RULE_SILENT, FAILED_INVOCATIONS, DLQ_MESSAGES, THROTTLED,
    SERVICE_ERRORS, SERVICE_LATENCY, COST_ANOMALY, COST_FORECAST, ACCOUNT_UNREACHABLE,
    SCHEMA_BREAKING_CHANGE, HEAL_MAINTENANCE)
RULES_BY_NAME: dict[str, AlertRule[Any]] = {rule.name: rule for rule in ALERT_RULES}


def evaluate(inputs: AlertInputs, config: Config, now: datetime, month: str) -> Evaluation:
    """Every rule over ``inputs`` at ``now`` (``month``: the forecast's month). A rule whose
    frame could not be read holds all its alerts."""
    conditions = []
    held: set[str] = set()
    for rule in ALERT_RULES:
        frame = rule.reads(inputs)
        if frame is None:
            held.add(rule.name)
            continue
        context = RuleContext(rule.settings_in(config), config, inputs, now, month)
        found = rule.evaluate(frame, context)
        conditions += found.conditions
        held |= found.held
    keys = [c.key for c in conditions]
    if len(keys) != len(set(keys)):
        raise ValueError("alert rules produced one key twice: "
                         f"{sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return Evaluation(conditions=conditions, held=frozenset(held))

