"""A store filled like a few collection cycles of QuickGrocer, for dashboard tests and demos.

Shared by the dashboard and browser tests and bench/dashboard_render.py. :func:`fill_org_store`
writes through :meth:`Store.write` with the real dataset contracts, the way the runner does: per
cycle one ``accounts`` row per account, one ``runs`` row per (account, region), and the
inventory (``rules``, ``event_buses``) of every reachable account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors.inventory import INVENTORY
from orgscope.datasets import (
    ACCOUNTS,
    DLQ_DEPTH,
    EVENT_BUSES,
    EVENT_METRICS,
    RULE_HEALTH,
    RULES,
    RUNS,
    all_datasets,
)
from orgscope.store import Store

REPO = Path(__file__).resolve().parents[1]
CONFIG_TEMPLATE = REPO / "config.toml"

UNREACHABLE_ID = "999999999999"
UNREACHABLE_REASON = (
    "AccessDenied on AssumeRole: User: arn:aws:sts::131313131313:assumed-role/orgscope/"
    "collector is not authorized to perform: sts:AssumeRole on resource: "
    "arn:aws:iam::999999999999:role/OrgScopeReadOnly"
)

#: (id, name, team, cost_center) of the reference organization, as in config.toml.
ORG: tuple[tuple[str, str, str, str], ...] = (
    ("111111111111", "customer-web", "customer-web", "CC-1001"),
    ("222222222222", "mobile-apps", "mobile", "CC-1002"),
    ("333333333333", "partner-portal", "partners", "CC-1003"),
    ("444444444444", "driver-app", "driver", "CC-1004"),
    ("555555555555", "merchant-dashboard", "merchant", "CC-1005"),
    ("666666666666", "inventory-mgmt", "inventory", "CC-2001"),
    ("777777777777", "order-processing", "orders", "CC-2002"),
    ("888888888888", "delivery-orchestration", "delivery", "CC-2003"),
    ("999999999999", "payment-service", "payments", "CC-2004"),
    ("000000000000", "identity-service", "identity", "CC-3001"),
    ("121212121212", "event-bus", "platform", "CC-3000"),
    ("131313131313", "monitoring", "platform", "CC-3000"),
    ("101010101010", "org-management", "platform", "CC-3000"),
)

CENTRAL = "121212121212"

#: (account, bus, rule, target account, pattern detail-type, disabled?)
RuleSpec = tuple[str, str, str, str, str, bool]

RULE_SPECS: tuple[RuleSpec, ...] = (
    (CENTRAL, "central-bus", "order-placed-to-orders", "777777777777", "Order Placed", False),
    (CENTRAL, "central-bus", "order-placed-to-inventory", "666666666666", "Order Placed", False),
    (CENTRAL, "central-bus", "order-placed-to-delivery", "888888888888", "Order Placed", True),
    (CENTRAL, "central-bus", "order-updated-to-orders", "777777777777", "Order Updated", False),
    (CENTRAL, "central-bus", "order-updated-to-merchant", "555555555555", "Order Updated",
     False),
    (CENTRAL, "central-bus", "order-cancelled-to-payments", "999999999999", "Order Cancelled",
     False),
    (CENTRAL, "central-bus", "order-cancelled-to-inventory", "666666666666", "Order Cancelled",
     False),
    (CENTRAL, "central-bus", "payment-processed-to-orders", "777777777777", "Payment Processed",
     False),
    (CENTRAL, "central-bus", "payment-processed-to-delivery", "888888888888",
     "Payment Processed", False),
    (CENTRAL, "central-bus", "payment-failed-to-customer-web", "111111111111", "Payment Failed",
     False),
    (CENTRAL, "central-bus", "payment-failed-to-mobile", "222222222222", "Payment Failed", False),
    (CENTRAL, "central-bus", "subscription-upgrade-to-payments", "999999999999",
     "Subscription Upgrade Requested", False),
    (CENTRAL, "central-bus", "subscription-activated-to-identity", "000000000000",
     "Subscription Activated", False),
    (CENTRAL, "central-bus", "subscription-activated-to-partners", "333333333333",
     "Subscription Activated", True),
    (CENTRAL, "central-bus", "archive-all-events", CENTRAL, "*", False),
    ("777777777777", "default", "orders-from-central", "777777777777", "Order Placed", False),
    ("777777777777", "default", "orders-nightly-reconcile", "777777777777", "", False),
    ("666666666666", "default", "inventory-from-central", "666666666666", "Order Placed", False),
    ("666666666666", "default", "inventory-restock-alerts", "666666666666", "Stock Low", True),
    ("888888888888", "default", "delivery-from-central", "888888888888", "Payment Processed",
     False),
    ("888888888888", "default", "driver-assignment", "444444444444", "Delivery Scheduled",
     False),
    ("999999999999", "default", "payments-from-central", "999999999999", "Order Cancelled",
     False),
    ("999999999999", "default", "payments-subscriptions", "999999999999",
     "Subscription Upgrade Requested", False),
    ("111111111111", "default", "web-payment-failed", "111111111111", "Payment Failed", False),
    ("222222222222", "default", "mobile-push-payment-failed", "222222222222", "Payment Failed",
     False),
    ("555555555555", "default", "merchant-order-updates", "555555555555", "Order Updated", False),
    ("000000000000", "default", "identity-subscription-activated", "000000000000",
     "Subscription Activated", False),
    ("333333333333", "default", "partner-webhooks", "333333333333", "Subscription Activated",
     True),
    ("131313131313", "default", "orgscope-heartbeat", "131313131313", "", False),
)


@dataclass(frozen=True)
class Cycle:
    started_at: datetime
    unreachable: frozenset[str]


def _accounts_frame(cycle: Cycle) -> pd.DataFrame:
    rows = [
        {
            "account_id": account_id,
            "name": name,
            "team": team,
            "environment": "production",
            "cost_center": cost_center,
            "reachable": account_id not in cycle.unreachable,
            "reason": UNREACHABLE_REASON if account_id in cycle.unreachable else None,
            "checked_at": cycle.started_at,
        }
        for account_id, name, team, cost_center in ORG
    ]
    return pd.DataFrame(rows, columns=ACCOUNTS.columns)


#: Central rules that forward to the team account's default bus (cross-account bus targets).
FORWARDED: frozenset[str] = frozenset({
    "order-placed-to-orders", "order-placed-to-inventory", "payment-processed-to-delivery",
    "order-cancelled-to-payments",
})

#: The source the producers put on each detail-type (the article's quickgrocer.* sources).
SOURCES: dict[str, str] = {
    "Order Placed": "quickgrocer.customer-web",
    "Order Updated": "quickgrocer.customer-web",
    "Order Cancelled": "quickgrocer.customer-web",
    "Payment Processed": "quickgrocer.payments",
    "Payment Failed": "quickgrocer.payments",
    "Subscription Upgrade Requested": "quickgrocer.customer-web",
    "Subscription Activated": "quickgrocer.identity",
    "Delivery Scheduled": "quickgrocer.delivery",
    "Stock Low": "quickgrocer.inventory",
}

#: Accounts the central bus policy lets PutEvents (the producers).
CENTRAL_PRODUCERS: tuple[str, ...] = (
    "111111111111", "222222222222", "999999999999", "000000000000",
)


def _target_arn(rule: str, target_account: str, region: str) -> str:
    short = re.sub(r"-(to|from)-.*$", "", rule)
    if rule.startswith("archive") or rule in FORWARDED:
        return f"arn:aws:events:{region}:{target_account}:event-bus/default"
    if rule.startswith("orgscope") or rule.endswith("reconcile"):
        return f"arn:aws:lambda:{region}:{target_account}:function:{rule}"
    return f"arn:aws:sqs:{region}:{target_account}:{short}-queue"


TEAMS: dict[str, str] = {account_id: team for account_id, _name, team, _cc in ORG}


def _rules_frame(cycle: Cycle, region: str, specs: Sequence[RuleSpec]) -> pd.DataFrame:
    rows = []
    for account_id, bus, rule, target_account, detail_type, disabled in specs:
        if account_id in cycle.unreachable:
            continue
        arn = f"arn:aws:events:{region}:{account_id}:rule/{bus}/{rule}"
        target = _target_arn(str(rule), str(target_account), region)
        dlq = (
            f"arn:aws:sqs:{region}:{account_id}:{rule}-dlq"
            if bus == "central-bus" and detail_type != "*"
            else None
        )
        targets = [{"id": "t1", "arn": target, "role_arn": None, "dlq_arn": dlq,
                    "retry_policy": {"MaximumRetryAttempts": 3} if dlq else None}]
        schedule = "rate(1 hour)" if not detail_type else None
        pattern = None
        if detail_type == "*":
            pattern = json.dumps({"source": [{"prefix": "quickgrocer."}]})
        elif detail_type:
            pattern = json.dumps(
                {"source": [SOURCES[str(detail_type)]], "detail-type": [detail_type]}
            )
        rows.append(
            {
                "account_id": account_id,
                "region": region,
                "bus": bus,
                "rule": rule,
                "arn": arn,
                "state": "DISABLED" if disabled else "ENABLED",
                "description": f"Routes {detail_type} events" if detail_type else "Scheduled",
                "event_pattern": pattern,
                "schedule_expression": schedule,
                "managed_by": None,
                "targets": json.dumps(targets, sort_keys=True),
                "target_count": 1,
                "dlq_arns": [dlq] if dlq else [],
                # each rule tagged with its account's team (a rule's own tag wins over its
                # account's: orgscope.ownership)
                "tags": json.dumps({"Team": TEAMS[account_id]}),
                "collected_at": cycle.started_at,
            }
        )
    return pd.DataFrame(rows, columns=RULES.columns)


def _buses_frame(cycle: Cycle, region: str) -> pd.DataFrame:
    rows = []
    for account_id, _name, _team, _cc in ORG:
        if account_id in cycle.unreachable:
            continue
        buses = ["default", "central-bus"] if account_id == CENTRAL else ["default"]
        for bus in buses:
            if bus == "central-bus":
                principals = list(CENTRAL_PRODUCERS)
            elif any(s[3] == account_id and s[2] in FORWARDED for s in RULE_SPECS):
                principals = [CENTRAL]
            else:
                principals = []
            rows.append(
                {
                    "account_id": account_id,
                    "region": region,
                    "bus": bus,
                    "arn": f"arn:aws:events:{region}:{account_id}:event-bus/{bus}",
                    "policy": None,
                    "allowed_principals": principals,
                    "rule_count": sum(
                        1 for s in RULE_SPECS if s[0] == account_id and s[1] == bus
                    ),
                    "collected_at": cycle.started_at,
                }
            )
    return pd.DataFrame(rows, columns=EVENT_BUSES.columns)


def _runs_frame(cycle: Cycle, run_id: str, regions: Sequence[str]) -> pd.DataFrame:
    rows = []
    for account_id, _name, _team, _cc in ORG:
        for region in regions:
            down = account_id in cycle.unreachable
            rows.append(
                {
                    "run_id": run_id,
                    "collector": INVENTORY.name,
                    "account_id": account_id,
                    "region": region,
                    "started_at": cycle.started_at,
                    "duration_s": 0.0 if down else 0.8,
                    "status": "error" if down else "ok",
                    "error": f"account unreachable: {UNREACHABLE_REASON}" if down else None,
                    "api_calls": 0 if down else 12,
                    "api_calls_by_operation": json.dumps(
                        {} if down else {"events:ListRules": 2, "events:ListTargetsByRule": 10}
                    ),
                    "metrics_requested": 0,
                    "traces_retrieved": 0,
                    "rows": 0 if down else 5,
                }
            )
    return pd.DataFrame(rows, columns=RUNS.columns)


def fill_org_store(
    store: Store,
    now: datetime,
    cycles: int = 3,
    every: timedelta = timedelta(minutes=5),
    unreachable_last: int = 1,
    regions: Sequence[str] = ("us-east-1",),
) -> list[Cycle]:
    """Write ``cycles`` collection cycles ending at ``now``; payment-service is unreachable in
    the last ``unreachable_last`` of them. Rules in every region but the first are a subset."""
    written = []
    for index in range(cycles):
        started = (now - every * (cycles - 1 - index)).replace(microsecond=0)
        down = frozenset({UNREACHABLE_ID}) if index >= cycles - unreachable_last else frozenset()
        cycle = Cycle(started, down)
        run_id = f"{started:%Y%m%dT%H%M%SZ}-test{index:04d}"
        for position, region in enumerate(regions):
            specs = RULE_SPECS if position == 0 else RULE_SPECS[::4]
            store.write(RULES.name, _rules_frame(cycle, region, specs), run_id)
            store.write(EVENT_BUSES.name, _buses_frame(cycle, region), run_id)
        store.write(ACCOUNTS.name, _accounts_frame(cycle), run_id)
        store.write(RUNS.name, _runs_frame(cycle, run_id, regions), run_id)
        written.append(cycle)
    return written


def write_config(tmp_path: Path, store_path: Path) -> Path:
    """A copy of the repo's config.toml with store.path pointing at ``store_path``."""
    text = CONFIG_TEMPLATE.read_text(encoding="utf-8")
    text, count = re.subn(
        r'(?m)^path = "\./data"$', f'path = "{store_path.as_posix()}"', text
    )
    assert count == 1, "config.toml no longer has store.path = './data'"
    target = tmp_path / "config.toml"
    target.write_text(text, encoding="utf-8")
    return target


def set_dashboard_keys(config_path: Path, **keys: object) -> Path:
    """Set keys of the ``[dashboard]`` section of a :func:`write_config` copy (each must be in
    the repo's config.toml already), as TOML: ``require_login="always"``,
    ``allowed_emails=["ana@example.com"]``."""
    text = config_path.read_text(encoding="utf-8")
    start = text.index("\n[dashboard]\n")
    end = text.find("\n[", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    for key, value in keys.items():
        toml = json.dumps(value)  # strings, booleans, numbers and lists of them: TOML too
        section, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {toml}", section)
        assert count == 1, f"config.toml's [dashboard] no longer has {key}"
    config_path.write_text(text[:start] + section + ("" if end < 0 else text[end:]),
                           encoding="utf-8")
    return config_path


# --- event flow: metrics, DLQ depth and verdicts ---------------------------------------------

#: The faults the sample plays, rule -> verdict (besides DISABLED rules and the STALE account).
FAILING_RULE = "payment-processed-to-delivery"
SILENT_RULE = "order-updated-to-merchant"
DEGRADED_RULE = "order-placed-to-inventory"
FAULT_VERDICTS: dict[str, str] = {
    FAILING_RULE: "FAILING", SILENT_RULE: "SILENT", DEGRADED_RULE: "DEGRADED",
}
#: How long before ``now`` each fault started.
FAILING_FOR = timedelta(hours=2)
SILENT_FOR = timedelta(hours=3)
DEGRADED_FOR = timedelta(hours=1)
PERIOD = timedelta(minutes=5)
#: Queue that drained a small backlog a few days ago (history for the DLQ chart).
BLIP_RULE = "order-cancelled-to-payments"


def flow_store(store: Store) -> Store:
    """The same store, with the event-flow datasets (registered or not yet)."""
    return Store(store.base, all_datasets())


def expected_verdicts(regions: Sequence[str] = ("us-east-1",)) -> dict[tuple[str, str], str]:
    """(region, rule) -> the verdict :func:`fill_event_flow` writes for it."""
    verdicts = {}
    for position, region in enumerate(regions):
        specs = RULE_SPECS if position == 0 else RULE_SPECS[::4]
        for account_id, _bus, rule, _target, _dt, disabled in specs:
            if account_id == UNREACHABLE_ID:
                verdict = "STALE"
            elif disabled:
                verdict = "DISABLED"
            else:
                verdict = FAULT_VERDICTS.get(str(rule), "OK") if position == 0 else "OK"
            verdicts[(region, str(rule))] = verdict
    return verdicts


def _reasons(verdict: str, rule: str, now: datetime) -> list[str]:
    if verdict == "FAILING":
        return ["132 failed invocations in the last 15 minutes (threshold 1).",
                f"Dead-letter queue {rule}-dlq grew by 131 messages."]
    if verdict == "SILENT":
        return ["Matched 0 events in the last 15 minutes; usually about 96 at this hour of "
                "the week (threshold 10%).",
                "PutEvents from quickgrocer.customer-web continue: the pattern may be broken."]
    if verdict == "DEGRADED":
        return ["Throttled 41 times in the last 15 minutes (threshold 1).",
                "Retries are 34% of invocation attempts (threshold 20%)."]
    if verdict == "DISABLED":
        return ["The rule is DISABLED: it matches and delivers nothing."]
    if verdict == "STALE":
        since = now - timedelta(minutes=5)
        return [f"Could not read account {UNREACHABLE_ID} since {since:%H:%M} UTC: "
                "AccessDenied on AssumeRole."]
    return []


def _health_frame(now: datetime, regions: Sequence[str], faults: bool) -> pd.DataFrame:
    expected = expected_verdicts(regions)
    rows = []
    for position, region in enumerate(regions):
        specs = RULE_SPECS if position == 0 else RULE_SPECS[::4]
        for account_id, bus, rule, _target, _dt, disabled in specs:
            verdict = expected[(region, str(rule))]
            if not faults:
                verdict = "DISABLED" if disabled else "OK"
            rows.append({
                "account_id": account_id, "region": region, "bus": bus, "rule": rule,
                "verdict": verdict, "reasons": _reasons(verdict, str(rule), now),
                "details": json.dumps({"verdict": verdict}), "evaluated_at": now,
            })
    return pd.DataFrame(rows, columns=RULE_HEALTH.columns)


def _rule_metrics(
    rule: str, account_id: str, bus: str, region: str, times: pd.DatetimeIndex,
    now: datetime, disabled: bool, scheduled: bool, rng: Any,
) -> pd.DataFrame:
    """The 12 AWS/Events metrics of one rule, zero-filled, 5-minute sums."""
    count = len(times)
    hours = (times.hour + times.minute / 60).to_numpy()
    shape = 1.0 + 0.6 * np.sin(2 * np.pi * (hours - 9) / 24)
    base = 8 + (sum(map(ord, rule)) % 40)
    if disabled:
        matched = np.zeros(count)
    elif scheduled:
        matched = (times.minute == 0).astype(float)
    else:
        matched = rng.poisson(base * shape).astype(float)
    age = (pd.Timestamp(now) - times).to_numpy()
    failed = np.zeros(count)
    throttled = np.zeros(count)
    retries = rng.binomial(matched.astype(int), 0.01).astype(float)
    latency = 60 + 15 * rng.random(count)
    if rule == SILENT_RULE:
        matched[age <= np.timedelta64(SILENT_FOR)] = 0
    if rule == FAILING_RULE:
        window = age <= np.timedelta64(FAILING_FOR)
        failed[window] = matched[window]
    if rule == DEGRADED_RULE:
        window = age <= np.timedelta64(DEGRADED_FOR)
        throttled[window] = rng.poisson(14, int(window.sum()))
        retries[window] = np.round(matched[window] * 0.5)
        latency[window] *= 4
    invocations = matched.copy()
    has_dlq = bus == "central-bus" and not rule.startswith("archive")
    values = {
        "MatchedEvents": matched,
        "TriggeredRules": matched,
        "Invocations": invocations,
        "FailedInvocations": failed,
        "ThrottledRules": throttled,
        "InvocationAttempts": invocations + retries,
        "SuccessfulInvocationAttempts": invocations - failed,
        "RetryInvocationAttempts": retries,
        "InvocationsSentToDlq": failed if has_dlq else np.zeros(count),
        "InvocationsFailedToBeSentToDlq": np.zeros(count) if has_dlq else failed,
        "DeadLetterInvocations": np.zeros(count),
    }
    frames = [
        pd.DataFrame({"metric": metric, "ts": times, "value": series})
        for metric, series in values.items()
    ]
    delivered = invocations > 0
    frames.append(pd.DataFrame({"metric": "IngestionToInvocationStartLatency",
                                "ts": times[delivered], "value": latency[delivered]}))
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(account_id=account_id, region=region, bus=bus, rule=rule)


def _account_metrics(
    account_id: str, region: str, times: pd.DatetimeIndex, rng: Any
) -> pd.DataFrame:
    hours = (times.hour + times.minute / 60).to_numpy()
    calls = rng.poisson(30 * (1.0 + 0.6 * np.sin(2 * np.pi * (hours - 9) / 24))).astype(float)
    values = {
        "PutEventsApproximateCallCount": calls,
        "PutEventsApproximateSuccessCount": calls,
        "PutEventsApproximateFailedCount": np.zeros(len(times)),
        "PutEventsEntriesCount": calls * 2,
        "PutEventsFailedEntriesCount": np.zeros(len(times)),
    }
    frame = pd.concat(
        [pd.DataFrame({"metric": m, "ts": times, "value": v}) for m, v in values.items()],
        ignore_index=True,
    )
    return frame.assign(account_id=account_id, region=region, bus=None, rule=None)


def _dlq_frame(
    now: datetime, times: pd.DatetimeIndex, region: str, metrics: pd.DataFrame
) -> pd.DataFrame:
    frames = []
    for _account, bus, rule, _target, detail_type, _disabled in RULE_SPECS:
        if bus != "central-bus" or detail_type == "*":
            continue
        visible = np.zeros(len(times), dtype="int64")
        oldest = np.zeros(len(times))
        if rule == FAILING_RULE:
            sent = metrics[(metrics["rule"] == rule)
                           & (metrics["metric"] == "InvocationsSentToDlq")]
            visible = sent["value"].cumsum().to_numpy().astype("int64")
            started = pd.Timestamp(now) - FAILING_FOR
            oldest = np.where(visible > 0,
                              (times - started).total_seconds().to_numpy().clip(0), 0.0)
        if rule == BLIP_RULE:
            age = (pd.Timestamp(now) - times).to_numpy()
            blip = (age > np.timedelta64(timedelta(days=3))) & (
                age <= np.timedelta64(timedelta(days=3, hours=2)))
            visible[blip] = 3
            oldest[blip] = 1800.0
        frames.append(pd.DataFrame({
            "account_id": CENTRAL, "region": region, "queue": f"{rule}-dlq",
            "queue_arn": f"arn:aws:sqs:{region}:{CENTRAL}:{rule}-dlq", "ts": times,
            "visible": visible, "in_flight": 0, "oldest_age_s": oldest,
        }))
    return pd.concat(frames, ignore_index=True)


def fill_event_flow(
    store: Store,
    now: datetime,
    days: float = 2,
    regions: Sequence[str] = ("us-east-1",),
    seed: int = 7,
) -> None:
    """Write ``days`` of 5-minute AWS/Events metrics for every rule, DLQ depth readings and
    two health evaluations (an older all-OK one and the latest with the sample's faults).

    The faults: :data:`FAILING_RULE` fails (its DLQ grows), :data:`SILENT_RULE` stopped
    matching, :data:`DEGRADED_RULE` is throttled and retrying; disabled rules match nothing;
    payment-service's rules are STALE (the account could not be read) and its metrics stop
    ten minutes before ``now``. Use with :func:`fill_org_store` (same ``now``, ``regions``).
    """
    flow = flow_store(store)
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(now).floor("5min")
    times = pd.date_range(end=end - PERIOD, periods=int(timedelta(days=days) / PERIOD),
                          freq="5min", tz="UTC")
    producers = sorted(set(CENTRAL_PRODUCERS) | {s[0] for s in RULE_SPECS})
    for position, region in enumerate(regions):
        specs = RULE_SPECS if position == 0 else RULE_SPECS[::4]
        parts = []
        for account_id, bus, rule, _target, detail_type, disabled in specs:
            stamps = times
            if account_id == UNREACHABLE_ID:
                stamps = times[times < end - timedelta(minutes=10)]
            parts.append(_rule_metrics(str(rule), str(account_id), str(bus), region, stamps,
                                       now, bool(disabled), not detail_type, rng))
        metrics = pd.concat(parts, ignore_index=True)
        accounts = pd.concat(
            [_account_metrics(a, region, times, rng) for a in producers], ignore_index=True)
        run_id = f"{now:%Y%m%dT%H%M%SZ}-flow-{region}"
        flow.write(EVENT_METRICS.name,
                   pd.concat([metrics, accounts], ignore_index=True)[EVENT_METRICS.columns],
                   run_id)
        if position == 0:
            flow.write(DLQ_DEPTH.name, _dlq_frame(now, times, region, metrics), run_id)
    earlier = now - timedelta(minutes=5)
    flow.write(RULE_HEALTH.name, _health_frame(earlier, regions, faults=False),
               f"{earlier:%Y%m%dT%H%M%SZ}-health")
    flow.write(RULE_HEALTH.name, _health_frame(now, regions, faults=True),
               f"{now:%Y%m%dT%H%M%SZ}-health")


def failing_disk(monkeypatch: Any) -> None:
    """Every store query fails as on a disk that returns I/O errors (an unreadable file is
    quarantined and read past, so that is not how a test makes a store unreadable now)."""
    import duckdb

    from orgscope.store import Store

    def fail(self: Store, sql: str, *args: Any) -> Any:
        raise duckdb.IOException("IO Error: Could not read file: Input/output error")

    monkeypatch.setattr(Store, "_query_once", fail)
