"""The alerts step's I/O edge: read the store, evaluate the rules, advance the lifecycle,
queue the Slack messages, store the state, deliver.

Order matters for the guarantees in docs/alerts.md: messages are queued in the outbox
*before* the alert state that produced them is stored, and their ids repeat if the same
transition is evaluated again, so a crash between the two neither loses nor doubles a message.
Delivery comes last and is the outbox's (``alerts.outbox``).

Reads (parameterized, recent partitions only): the latest ``rule_health``; the reachability
collector's ``runs`` of the last two days; ``spans`` of each trace rule's last complete
window; ``cost_daily`` for the anomaly window and the month so far; ``heal_actions`` of the
last day (of the heal_maintenance window, when longer); ``accounts``; the open ``alerts``
and ``silences``. Writes ``alerts``, ``alert_events``, ``notifications`` and ``silences``
(config.toml's).
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from alerts.lifecycle import Advance, AlertState, advance
from alerts.notify import alert_messages, heal_messages, notification_rows
from alerts.outbox import DrainReport, Message, Outbox, Post, Record, RetryPolicy
from alerts.routing import SecretCache, Webhooks, secrets_fetcher
from alerts.rule import AccountInfo, AlertInputs
from alerts.rules import (
    COST_ANOMALY,
    HEAL_MAINTENANCE,
    SERVICE_ERRORS,
    SERVICE_LATENCY,
    evaluate,
)
from alerts.silences import SilenceSpec, sync_config_silences
from alerts.webhook import SlackPoster
from orgscope.access import reachability_runs_sql
from orgscope.aws import SessionFactory
from orgscope.config import Config, SlackConfig
from orgscope.cost import anomalies as cost_anomalies
from orgscope.cost import forecast as cost_forecast
from orgscope.cost.attribution import month_of
from orgscope.cost.store_io import (
    attributed,
    forecast_calibration,
    forecast_daily,
    forecast_start,
    last_cost_day,
    team_owner,
)
from orgscope.datasets import ALERT_EVENTS, ALERTS, NOTIFICATIONS
from orgscope.ownership import known_teams, rule_teams, team_tag_key
from orgscope.rule_history import HISTORY_SQL, LATEST_SQL
from orgscope.schema_io import accounts_frame, read_breaking_changes
from orgscope.store import Store, StoreError, ordered_id
from orgscope.store_files import LocalFiles
from orgscope.traces.views import latency_percentiles

log = logging.getLogger(__name__)

OUTBOX_FOLDER = "_outbox"
RUNS_LOOKBACK = timedelta(days=2)
HEAL_LOOKBACK = timedelta(days=1)
#: Sent and failed outbox files are kept this long (longer than HEAL_LOOKBACK: an id must not
#: be queued again after its file is gone).
OUTBOX_KEEP = timedelta(days=7)


def outbox_for(store: Store, config: Config | None = None) -> Outbox:
    """The outbox: ``[slack] outbox_path`` when set (relative to the config file), else
    ``_outbox`` in a local store's folder, else (an S3 store: the outbox needs a local disk's
    atomic renames) ``.orgscope-outbox`` beside the config file."""
    here = Path(config.source).resolve().parent if config is not None else Path.cwd()
    if config is not None and config.slack.outbox_path:
        return Outbox(here / Path(config.slack.outbox_path).expanduser())
    if isinstance(store.place, LocalFiles):
        return Outbox(Path(store.root) / OUTBOX_FOLDER)
    return Outbox(here / ".orgscope-outbox")


# --- reading ---------------------------------------------------------------------------------


def _maybe(what: str, read: Callable[[], pd.DataFrame | None]) -> pd.DataFrame | None:
    """``read()``, or None (the rules reading it hold their alerts) when the store fails."""
    try:
        frame = read()
    except StoreError as error:
        log.warning("alerts: cannot read %s (%s); its alerts keep their state", what, error)
        return None
    return frame


def account_infos(config: Config, store: Store) -> dict[str, AccountInfo]:
    """account id -> name and team: the ``accounts`` snapshot, overridden by config.toml."""
    infos: dict[str, AccountInfo] = {}
    frame = _maybe("accounts", lambda: store.query("SELECT account_id, name, team FROM accounts"))
    for row in (frame.to_dict("records") if frame is not None else []):
        infos[str(row["account_id"])] = AccountInfo(str(row["name"]), str(row["team"]))
    infos.update({a.id: AccountInfo(a.name, a.team) for a in config.accounts})
    return infos


def trace_window(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The last complete window: [floor(now) - window, floor(now)), floored to ``window``."""
    seconds = int(window.total_seconds())
    end = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
    return end - window, end


def read_latency(store: Store, window: timedelta, now: datetime) -> pd.DataFrame | None:
    """``latency_percentiles`` of the spans of the last complete ``window`` (one bucket), with
    the region of each service and account. None when the window holds no span at all: the
    trace collectors read nothing (or no traffic flowed), which is no evidence that a firing
    service alert recovered, so those alerts hold."""
    if "spans" not in store.datasets:
        return pd.DataFrame()
    start, end = trace_window(now, window)
    spans = store.query('SELECT * EXCLUDE (date) FROM spans WHERE date >= ? AND date <= ? '
                        'AND "start" >= ? AND "start" < ?',
                        [start.date(), end.date(), start, end])
    if spans.empty:
        return None
    table = latency_percentiles(spans, f"{int(window.total_seconds())}s")
    regions = spans.groupby(["service", "account_id"])["region"].first().rename("region")
    return table.merge(regions.reset_index(), on=["service", "account_id"], how="left")


@dataclass(frozen=True)
class CostSignals:
    anomalies: pd.DataFrame
    forecast: pd.DataFrame
    month: str


#: Cost signals by (store, cost_daily files, day, settings): cost_daily changes a few times a
#: day (the cost collector's interval), while the alerts step runs after every collection.
_COST_CACHE: dict[tuple[str, tuple[str, ...], str, str], CostSignals] = {}


def read_cost_signals(config: Config, store: Store, now: datetime) -> CostSignals:
    """Anomalies of the last ``cost_anomaly.days`` days of stored cost, and the forecast of
    the month the newest cost day is in (only while that month is the current one).

    Computed again only when ``cost_daily``'s files, the day or the cost settings change."""
    if "cost_daily" not in store.datasets:
        return CostSignals(pd.DataFrame(), pd.DataFrame(), month_of(now.date()))
    key = (store.base, tuple(str(f) for f in store.files("cost_daily")), now.date().isoformat(),
           config.cost.model_dump_json() + COST_ANOMALY.settings_in(config).model_dump_json()
           + json.dumps([a.model_dump(mode="json") for a in config.accounts]))
    cached = _COST_CACHE.get(key)
    if cached is None:
        cached = _cost_signals(config, store, now)
        _COST_CACHE.clear()  # one store and day at a time is all a process needs
        _COST_CACHE[key] = cached
    return cached


def _cost_signals(config: Config, store: Store, now: datetime) -> CostSignals:
    month = month_of(now.date())
    last = last_cost_day(store) if "cost_daily" in store.datasets else None
    if last is None:
        return CostSignals(pd.DataFrame(), pd.DataFrame(), month)
    days = COST_ANOMALY.settings_in(config).days
    since = last - timedelta(days=days - 1)
    start = min(since - timedelta(days=config.cost.anomaly_window_days),
                forecast_start(month, last))
    frame = attributed(store, config, start, last + timedelta(days=1)).frame
    found = cost_anomalies.detect(frame, window=config.cost.anomaly_window_days,
                                  z_threshold=config.cost.anomaly_z,
                                  min_usd=config.cost.anomaly_min_usd, since=since)
    outlook = pd.DataFrame()
    # through the month's last day too: its cost is still accruing, and over a budget is news
    if month_of(last) == month and len(frame):
        # the month so far and the weeks before it: the forecast learns each account's
        # weekday shape and level from them (orgscope/cost/forecast.py)
        daily = forecast_daily(frame, month, last)
        outlook = cost_forecast.forecast_month(
            daily, month, last, config.cost.budgets,
            calibration=forecast_calibration(store, last), owner_on=team_owner(config))
    return CostSignals(found, outlook, month)


#: The latest ``rule_health`` evaluation per account and region, as the ``rule_health`` view
#: defines it, but found on the narrow columns first: the view's window function carries every
#: row's reasons and details through the whole history (5 s for 30 days of 200 rules, growing
#: with every evaluation) where this reads them only for the latest rows (0.2 s).
RULE_HEALTH_SQL = """
SELECT h.* EXCLUDE (date) FROM rule_health_history h JOIN (
    SELECT account_id, region, max(evaluated_at) AS latest FROM rule_health_history
    GROUP BY ALL) l
ON h.account_id = l.account_id AND h.region = l.region AND h.evaluated_at = l.latest
"""


def read_rule_health(store: Store) -> pd.DataFrame:
    """The latest verdict of every rule (the ``rule_health`` view's rows)."""
    frame = store.query(RULE_HEALTH_SQL)
    # two evaluations of one account and region stored with the same evaluated_at (the view
    # keeps the newer file's): one row per rule
    return frame.drop_duplicates(["account_id", "region", "bus", "rule"], keep="last") \
        .reset_index(drop=True)


def read_inputs(config: Config, store: Store, now: datetime) -> tuple[AlertInputs, str]:
    """The rules' inputs (:class:`AlertInputs`) and the forecast's month."""
    health = _maybe("rule_health", lambda: read_rule_health(store))
    since = now - RUNS_LOOKBACK
    runs = _maybe("runs", lambda: store.query(
        reachability_runs_sql("run_id, account_id, region, started_at, status, error"),
        [since.date(), since, now]))
    latency: dict[str, pd.DataFrame | None] = {}
    by_window: dict[timedelta, pd.DataFrame | None] = {}
    for service_rule in (SERVICE_ERRORS, SERVICE_LATENCY):
        settings = service_rule.settings_in(config)
        if not settings.enabled:
            latency[service_rule.name] = pd.DataFrame()
            continue
        if settings.window not in by_window:  # one read per distinct window
            by_window[settings.window] = _maybe(
                "spans", functools.partial(read_latency, store, settings.window, now))
        latency[service_rule.name] = by_window[settings.window]
    try:
        cost = read_cost_signals(config, store, now)
        anomalies: pd.DataFrame | None = cost.anomalies
        outlook: pd.DataFrame | None = cost.forecast
        month = cost.month
    except StoreError as error:
        log.warning("alerts: cannot read cost (%s); cost alerts keep their state", error)
        anomalies, outlook, month = None, None, month_of(now.date())
    # the maintenance page looks back its window; the heal notices (below) only HEAL_LOOKBACK
    heal_from = now - max(HEAL_LOOKBACK, HEAL_MAINTENANCE.settings_in(config).window)
    heal = _maybe("heal_actions", lambda: store.query(
        'SELECT * EXCLUDE (date) FROM heal_actions WHERE date >= ? AND "at" >= ?',
        [heal_from.date(), heal_from])) if "heal_actions" in store.datasets else pd.DataFrame()
    disabled = _maybe("rules_history", lambda: store.query(HISTORY_SQL)) \
        if "rules" in store.datasets else pd.DataFrame()
    latest = _maybe("rules", lambda: store.query(LATEST_SQL)) \
        if "rules" in store.datasets else pd.DataFrame()
    owners = rule_teams(latest, team_tag_key(config), known_teams(config)) \
        if latest is not None else {}
    infos = account_infos(config, store)
    breaks = _maybe("event_schemas", lambda: read_breaking_changes(
        store, accounts_frame({k: (v.name, v.team) for k, v in infos.items()}))) \
        if "rules" in store.datasets else pd.DataFrame()
    inputs = AlertInputs(rule_health=health, runs=runs, latency=latency, anomalies=anomalies,
                         forecast=outlook, heal_actions=heal, accounts=infos,
                         disabled=disabled, rule_teams=owners, schema_breaks=breaks)
    return inputs, month


def _timestamp(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    result: datetime = pd.Timestamp(value).tz_convert("UTC").to_pydatetime()
    return result


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def read_previous(store: Store, keys: Sequence[str]) -> dict[str, AlertState]:
    """The latest stored row of every open alert and of ``keys`` (resolved ones too)."""
    frame = store.query(f"SELECT {', '.join(ALERTS.columns)} FROM alerts "
                        "WHERE state <> 'resolved' OR list_contains(?, key)", [list(keys)])
    states: dict[str, AlertState] = {}
    for row in frame.to_dict("records"):
        values: dict[str, Any] = {}
        for column in ALERTS.columns:
            value = row[column]
            if column.endswith("_at"):
                values[column] = _timestamp(value)
            elif column in ("key", "alert_name", "severity", "state", "summary"):
                values[column] = str(value)
            else:
                values[column] = _text(value)
        values["details"] = values["details"] or "{}"
        states[values["key"]] = AlertState(**values)
    return states


# --- writing ---------------------------------------------------------------------------------


def write_advance(store: Store, result: Advance, now: datetime) -> None:
    if result.states:
        frame = pd.DataFrame([s.row() for s in result.states], columns=ALERTS.columns)
        store.write(ALERTS.name, frame, ordered_id("alerts", now))
    if result.events:
        frame = pd.DataFrame([e.__dict__ for e in result.events], columns=ALERT_EVENTS.columns)
        store.write(ALERT_EVENTS.name, frame, ordered_id("alert-events", now))


def recorder(store: Store) -> Record:
    """The outbox's ``record``: one ``notifications`` row per attempt (written at once, so
    the dashboard shows a retry while it waits)."""
    def record(message: Message) -> None:
        store.write(NOTIFICATIONS.name, notification_rows([message]), ordered_id("notifications"))
    return record


def _poster(config: Config, factory: SessionFactory | None) -> SlackPoster:
    secrets = None
    if factory is not None:
        secrets = SecretCache(secrets_fetcher(config, factory),
                              config.slack.secret_cache_ttl.total_seconds())
    return SlackPoster(Webhooks(secrets), config.slack.timeout_s)


#: Per session factory (held weakly: it lives as long as its process's wiring), the poster
#: built for it and the [slack] settings it was built from.
_POSTERS: weakref.WeakKeyDictionary[SessionFactory, tuple[SlackConfig, SlackPoster]] = \
    weakref.WeakKeyDictionary()


def poster_for(config: Config, factory: SessionFactory | None) -> SlackPoster:
    """One poster, and so one secret cache, per session factory: secrets are cached as long as
    the process runs (as the article's SecretCache), and read again after their TTL."""
    if factory is None:
        return _poster(config, None)
    cached = _POSTERS.get(factory)
    if cached is None or cached[0] != config.slack:
        cached = (config.slack, _poster(config, factory))
        _POSTERS[factory] = cached
    return cached[1]


def drain(config: Config, store: Store, factory: SessionFactory | None,
          max_wait_s: float | None = None, poster: Post | None = None, *,
          now: datetime | None = None) -> DrainReport:
    """Deliver what the outbox holds (see :meth:`Outbox.drain`), then prune what was sent
    or failed more than OUTBOX_KEEP before ``now`` (default: the clock; the alerts step
    passes the moment it evaluated, so a message is never pruned before the step that
    created it would look for it again)."""
    slack = config.slack
    policy = RetryPolicy(slack.max_attempts, slack.backoff_s, slack.max_backoff_s)
    outbox = outbox_for(store, config)
    report = outbox.drain(poster or poster_for(config, factory), recorder(store), policy,
                          slack.drain_wait_s if max_wait_s is None else max_wait_s)
    outbox.prune((now or datetime.now(UTC)) - OUTBOX_KEEP)
    return report


# --- the step --------------------------------------------------------------------------------


@dataclass
class AlertsRun:
    """What one run of the step did."""

    at: datetime
    advance: Advance
    queued: list[Message] = field(default_factory=list)
    delivery: DrainReport | None = None
    open_alerts: list[AlertState] = field(default_factory=list)

    def summary(self) -> str:
        firing = sum(1 for a in self.open_alerts if a.state == "firing")
        pending = sum(1 for a in self.open_alerts if a.state == "pending")
        silenced = sum(1 for a in self.open_alerts if a.silenced_by)
        text = (f"alerts: {firing} firing, {pending} pending ({silenced} silenced); "
                f"{len(self.advance.events)} transitions, {len(self.queued)} messages queued")
        if self.delivery is not None:
            text += "; " + self.delivery.summary()
        return text


def config_silences(config: Config) -> list[SilenceSpec]:
    return [SilenceSpec(matchers=dict(s.matchers), ends_at=_utc(s.ends_at), comment=s.comment,
                        starts_at=_utc(s.starts_at) if s.starts_at else None)
            for s in config.alerts.silences]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_alerts(config: Config, store: Store, factory: SessionFactory | None = None, *,
               now: datetime | None = None, deliver: bool = True,
               max_wait_s: float | None = None, poster: Post | None = None) -> AlertsRun:
    """Evaluate every alert rule at ``now`` (default: the clock), queue and (unless
    ``deliver`` is false) deliver the messages. ``factory``: the process's SessionFactory, for
    webhooks kept in Secrets Manager; ``poster`` replaces the Slack poster (tests)."""
    moment = _utc(now or datetime.now(UTC)).replace(microsecond=0)
    inputs, month = read_inputs(config, store, moment)
    evaluation = evaluate(inputs, config, moment, month)
    silences = sync_config_silences(store, config_silences(config), moment)
    previous = read_previous(store, [c.key for c in evaluation.conditions])
    result = advance(previous, evaluation, silences, moment, config.alerts.repeat_interval)
    messages = alert_messages(result.notices, config, moment)
    if inputs.heal_actions is not None and not inputs.heal_actions.empty:
        actions = inputs.heal_actions
        recent = pd.to_datetime(actions["at"], utc=True) >= moment - HEAL_LOOKBACK
        messages += heal_messages(actions[recent], config, moment)
    # one microsecond apart, so the outbox sends them in this order (alerts, then heal notices)
    messages = [replace(m, created_at=m.created_at + timedelta(microseconds=i))
                for i, m in enumerate(messages)]
    outbox = outbox_for(store, config)
    queued = [m for m in messages if outbox.enqueue(m)]
    if queued:
        store.write(NOTIFICATIONS.name, notification_rows(queued), ordered_id("notifications"))
    write_advance(store, result, moment)
    current = {**previous, **{s.key: s for s in result.states}}
    run = AlertsRun(at=moment, advance=result, queued=queued,
                    open_alerts=sorted((s for s in current.values() if s.open),
                                       key=lambda s: (s.state, s.severity, s.key)))
    if deliver:
        run.delivery = drain(config, store, factory, max_wait_s, poster, now=moment)
    log.debug("%s", run.summary())
    return run
