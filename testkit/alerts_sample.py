"""Alerts, their history, Slack messages, silences and the heal log of a short bad night.

Shared by the dashboard and browser tests and bench/dashboard_render.py.
:func:`fill_alerts` writes through :meth:`Store.write` with the real dataset contracts
(orgscope/datasets/alerts.py, orgscope/datasets/heal.py), rows shaped as the alerting and
auto-heal steps write them:

* FIRING_KEY: critical, a disabled rule on the central bus routing to order-processing; two
  events (pending, firing); one Slack message delivered on the third attempt (429, 500, ok);
* SILENCED_KEY: warning, DLQ build-up of delivery, silenced by SILENCE_ID;
* PENDING_KEY: warning, throttling on payments, not yet firing;
* RESOLVED_KEY: critical, a disabled rule, resolved after auto-heal, with firing + resolved
  messages;
* heal_actions: the heal of RESOLVED_KEY's rule, an opted-out rule skipped, a maintenance skip.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from orgscope.datasets import ALERT_EVENTS, ALERTS, HEAL_ACTIONS, NOTIFICATIONS, SILENCES
from orgscope.store import Store

CENTRAL = "121212121212"
FIRING_RULE = "order-placed-to-orders"
FIRING_KEY = f"rule_disabled/{CENTRAL}/us-east-1/central-bus/{FIRING_RULE}"
SILENCED_KEY = "dlq_depth/888888888888/us-east-1/default/delivery-from-central"
PENDING_KEY = "throttling/999999999999/us-east-1/default/payments-from-central"
RESOLVED_RULE = "order-cancelled-to-inventory"
RESOLVED_KEY = f"rule_disabled/{CENTRAL}/us-east-1/central-bus/{RESOLVED_RULE}"
SILENCE_ID = "sil-0123456789ab"
EXPIRED_SILENCE_ID = "sil-ba9876543210"
OPTED_OUT_RULE = "partner-webhooks"
DASHBOARD_URL = "http://localhost:8501/alerts"


def _alert(key: str, name: str, severity: str, state: str, account: tuple[str, str, str],
           bus: str, rule: str, summary: str, started: datetime, *,
           fired: datetime | None = None, resolved: datetime | None = None,
           notified: datetime | None = None, silenced_by: str | None = None,
           service: str | None = None) -> dict[str, Any]:
    account_id, account_name, team = account
    return {
        "key": key, "alert_name": name, "severity": severity, "state": state,
        "account_id": account_id, "account_name": account_name, "region": "us-east-1",
        "team": team, "bus": bus, "rule": rule, "service": service, "summary": summary,
        "details": json.dumps({"rule": rule}), "started_at": started, "fired_at": fired,
        "resolved_at": resolved, "last_notified_at": notified,
        "updated_at": resolved or fired or started, "silenced_by": silenced_by,
    }


#: Who disabled FIRING_RULE, as a change event (docs/changes.md) names them.
DISABLED_BY = f"arn:aws:sts::{CENTRAL}:assumed-role/Admin/jo"


def firing_summary(disabled_at: datetime) -> str:
    """FIRING_KEY's summary, as rule_disabled words it when a change event names who."""
    return (f"rule {FIRING_RULE} is DISABLED, disabled by {DISABLED_BY} at "
            f"{disabled_at:%Y-%m-%d %H:%M} UTC")


def firing_payload(now: datetime) -> dict[str, Any]:
    """The Block Kit message of FIRING_KEY, as the alerting step would post it."""
    return {
        "text": f":red_circle: CRITICAL rule disabled: {FIRING_RULE} (event-bus, us-east-1)",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text",
                                        "text": f"CRITICAL: rule {FIRING_RULE} is disabled"}},
            {"type": "section", "text": {
                "type": "mrkdwn",
                "text": f"*What*: rule `{FIRING_RULE}` on bus `central-bus` is DISABLED\n"
                        "*Why*: it was ENABLED at the previous inventory; Order Placed events "
                        "no longer reach order-processing"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*Account*\nevent-bus ({CENTRAL})"},
                {"type": "mrkdwn", "text": "*Region*\nus-east-1"},
                {"type": "mrkdwn", "text": "*Team*\nplatform"},
                {"type": "mrkdwn", "text": "*Matched (last 15 min)*\n0 (usual 412)"},
            ]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"firing since {now - timedelta(minutes=20):%H:%M} "
                                           "UTC · key `" + FIRING_KEY + "`"}]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open in orgscope"},
                 "url": f"{DASHBOARD_URL}?alert={FIRING_KEY}"}]},
        ],
    }


def _notification(nid: str, key: str | None, kind: str, status: str, attempts: int,
                  created: datetime, sent: datetime | None, payload: dict[str, Any],
                  error: str | None = None) -> dict[str, Any]:
    return {"id": nid, "alert_key": key, "kind": kind, "channel": "platform-oncall",
            "status": status, "attempts": attempts, "last_error": error, "created_at": created,
            "sent_at": sent, "payload": json.dumps(payload)}


def fill_alerts(store: Store, now: datetime) -> None:
    """Write the night described in the module docstring, ending at ``now``."""
    platform = (CENTRAL, "event-bus", "platform")
    delivery = ("888888888888", "delivery-orchestration", "delivery")
    payments = ("999999999999", "payment-service", "payments")
    fired = now - timedelta(minutes=20)
    resolved_fired = now - timedelta(hours=3)
    resolved_at = now - timedelta(hours=2, minutes=50)
    alerts = [
        _alert(FIRING_KEY, "rule_disabled", "critical", "firing", platform, "central-bus",
               FIRING_RULE, firing_summary(fired - timedelta(minutes=6)),
               fired - timedelta(minutes=5), fired=fired, notified=fired),
        _alert(SILENCED_KEY, "dlq_depth", "warning", "firing", delivery, "default",
               "delivery-from-central", "DLQ delivery-from-central-dlq holds 37 messages",
               now - timedelta(hours=1), fired=now - timedelta(minutes=50),
               silenced_by=SILENCE_ID),
        _alert(PENDING_KEY, "throttling", "warning", "pending", payments, "default",
               "payments-from-central", "ThrottledRules 12 in the last 5 min",
               now - timedelta(minutes=4)),
        _alert(RESOLVED_KEY, "rule_disabled", "critical", "resolved", platform, "central-bus",
               RESOLVED_RULE, f"rule {RESOLVED_RULE} is DISABLED",
               resolved_fired - timedelta(minutes=5), fired=resolved_fired,
               resolved=resolved_at, notified=resolved_at),
    ]
    store.write(ALERTS.name, pd.DataFrame(alerts, columns=ALERTS.columns), "alerts-test-0001")
    events = [
        (FIRING_KEY, "pending", fired - timedelta(minutes=5), f"rule {FIRING_RULE} is DISABLED"),
        (FIRING_KEY, "firing", fired, f"rule {FIRING_RULE} is DISABLED"),
        (SILENCED_KEY, "pending", now - timedelta(hours=1), "DLQ holds 12 messages"),
        (SILENCED_KEY, "firing", now - timedelta(minutes=50), "DLQ holds 37 messages"),
        (PENDING_KEY, "pending", now - timedelta(minutes=4), "ThrottledRules 12"),
        (RESOLVED_KEY, "pending", resolved_fired - timedelta(minutes=5), "rule disabled"),
        (RESOLVED_KEY, "firing", resolved_fired, "rule disabled"),
        (RESOLVED_KEY, "resolved", resolved_at, f"rule {RESOLVED_RULE} is ENABLED again"),
    ]
    store.write(ALERT_EVENTS.name, pd.DataFrame(
        [{"key": k, "state": s, "at": a, "summary": t} for k, s, a, t in events],
        columns=ALERT_EVENTS.columns), "alerts-test-0001")
    notifications = [
        _notification("ntf-firing-1", FIRING_KEY, "firing", "sent", 3, fired,
                      fired + timedelta(seconds=31), firing_payload(now),
                      error="HTTP 500 from Slack"),
        _notification("ntf-resolved-0", RESOLVED_KEY, "firing", "sent", 1, resolved_fired,
                      resolved_fired, {"text": f"CRITICAL rule disabled: {RESOLVED_RULE}"}),
        _notification("ntf-resolved-1", RESOLVED_KEY, "resolved", "sent", 1, resolved_at,
                      resolved_at, {"text": "resolved", "blocks": [
                          {"type": "section", "text": {
                              "type": "mrkdwn",
                              "text": f":white_check_mark: *Resolved*: rule {RESOLVED_RULE} "
                                      "is ENABLED again"}}]}),
        _notification("ntf-heal-1", None, "heal", "failed", 5,
                      resolved_fired + timedelta(minutes=2), None,
                      {"text": f"auto-heal re-enabled {RESOLVED_RULE}"},
                      error="HTTP 500 from Slack"),
    ]
    store.write(NOTIFICATIONS.name, pd.DataFrame(notifications, columns=NOTIFICATIONS.columns),
                "alerts-test-0001")
    silences = [
        {"id": SILENCE_ID, "matchers": json.dumps({"account_id": "888888888888",
                                                   "alert_name": "dlq_depth"}),
         "starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(hours=3),
         "created_by": "local:sre", "comment": "delivery replaying its DLQ",
         "created_at": now - timedelta(hours=1), "expired_at": None, "source": "dashboard"},
        {"id": EXPIRED_SILENCE_ID, "matchers": json.dumps({"team": "mobile"}),
         "starts_at": now - timedelta(hours=6), "ends_at": now + timedelta(hours=6),
         "created_by": "ana@example.com", "comment": "app release (expired by bob@example.com)",
         "created_at": now - timedelta(hours=6), "expired_at": now - timedelta(hours=5),
         "source": "dashboard"},
    ]
    store.write(SILENCES.name, pd.DataFrame(silences, columns=SILENCES.columns),
                "silences-test-0001")
    heal = [
        {"id": "heal-1", "account_id": CENTRAL, "account_name": "event-bus",
         "region": "us-east-1", "bus": "central-bus", "rule": RESOLVED_RULE, "team": "platform",
         "action": "enable", "dry_run": False, "result": "enabled",
         "reason": "was ENABLED at the inventory of " + f"{resolved_fired:%H:%M}",
         "disabled_by": "arn:aws:sts::121212121212:assumed-role/Admin/jo",
         "disabled_at": resolved_fired - timedelta(minutes=9), "at": resolved_at,
         "actor": "orgscope-heal"},
        {"id": "heal-2", "account_id": "333333333333", "account_name": "partner-portal",
         "region": "us-east-1", "bus": "default", "rule": OPTED_OUT_RULE, "team": "partners",
         "action": "skip", "dry_run": False, "result": "skipped",
         "reason": "opted out: tag orgscope:autoheal=off", "disabled_by": None,
         "disabled_at": None, "at": now - timedelta(hours=1), "actor": "orgscope-heal"},
        {"id": "heal-3", "account_id": None, "account_name": None, "region": None, "bus": None,
         "rule": None, "team": None, "action": "skip", "dry_run": False, "result": "skipped",
         "reason": "maintenance: 9 of 28 rules (32%) disabled at once", "disabled_by": None,
         "disabled_at": None, "at": now - timedelta(minutes=30), "actor": "orgscope-heal"},
    ]
    store.write(HEAL_ACTIONS.name, pd.DataFrame(heal, columns=HEAL_ACTIONS.columns),
                "heal-test-0001")
