"""From notices and heal actions to outbox messages: routing, grouping, repeatable ids.

Grouping: the notices of one evaluation are routed (team and severity -> channel), then
gathered by (channel, account, kind). A gathering of ``[alerts] group_threshold`` or more goes
as one message listing them (one broken account, or many rules of one account failing
together, is one message rather than fifty); smaller ones go one message per alert. Pages are
never grouped.

Ids are derived from what caused the message (the alert key, the kind and the stored row the
transition started from; a heal action's id), so building the messages again after a crash
gives the same ids and the outbox refuses the duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from alerts.lifecycle import Notice
from alerts.outbox import Message
from alerts.routing import route
from alerts.rule import alert_key
from alerts.rules import RULE_DISABLED
from alerts.slack import alert_message, group_message, heal_message
from orgscope.config import Config
from orgscope.datasets import NOTIFICATIONS

#: heal_actions results worth a Slack notice, and the severity they are routed with.
HEAL_NOTICE_SEVERITY: dict[str, str] = {"enabled": "info", "would-enable": "info",
                                        "failed": "warning", "not-verified": "warning"}


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def alert_messages(notices: Sequence[Notice], config: Config, now: datetime) -> list[Message]:
    """One message per notice, or one per group (see the module docstring)."""
    base_url = config.dashboard.base_url
    groups: dict[tuple[str, str, str], list[Notice]] = {}
    order: list[tuple[str, str, str]] = []
    for notice in notices:
        channel = route(config.slack, notice.alert.team, notice.alert.severity)
        account = notice.alert.account_id or ""
        group = (channel, account, notice.kind) if notice.kind != "page" else \
            (channel, notice.alert.key, notice.kind)
        if group not in groups:
            groups[group] = []
            order.append(group)
        groups[group].append(notice)
    messages: list[Message] = []
    for channel, _, kind in order:
        members = groups[(channel, _, kind)]
        if kind != "page" and len(members) >= config.alerts.group_threshold:
            ordered = sorted(members, key=lambda n: (
                ("critical", "warning", "info").index(n.alert.severity)
                if n.alert.severity in ("critical", "warning", "info") else 3, n.alert.key))
            payload = group_message([n.alert for n in ordered], kind, base_url,
                                    config.alerts.group_lines)
            messages.append(Message(
                id="grp-" + _digest(sorted(n.identity for n in members)), channel=channel,
                kind=kind, alert_key=ordered[0].alert.key, payload=payload, created_at=now))
            continue
        for notice in members:
            messages.append(Message(
                id="msg-" + _digest([notice.identity]), channel=channel, kind=kind,
                alert_key=notice.alert.key,
                payload=alert_message(notice.alert, kind, base_url), created_at=now))
    return messages


def heal_messages(actions: pd.DataFrame, config: Config, now: datetime) -> list[Message]:
    """A heal notice for every ``heal_actions`` row that re-enabled a rule (or would have, or
    failed to); skips are not notices (the maintenance skip raises the heal_maintenance page,
    the others are in the audit log)."""
    if actions.empty:
        return []
    messages = []
    for row in actions.sort_values("at").to_dict("records"):
        severity = HEAL_NOTICE_SEVERITY.get(str(row.get("result")))
        if row.get("action") != "enable" or severity is None:
            continue
        record: dict[str, Any] = {str(k): (None if _missing(v) else v) for k, v in row.items()}
        for name in ("at", "disabled_at"):
            value = record.get(name)
            if value is not None:
                record[name] = pd.Timestamp(value).to_pydatetime()
        key = alert_key(RULE_DISABLED.name, [record.get("account_id"), record.get("region"),
                                          record.get("bus"), record.get("rule")])
        channel = route(config.slack, record.get("team"), severity)
        messages.append(Message(
            id="heal-" + _digest([str(record["id"])]), channel=channel, kind="heal",
            alert_key=key, payload=heal_message(record, config.dashboard.base_url, key),
            created_at=now))
    return messages


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def notification_rows(messages: Sequence[Message]) -> pd.DataFrame:
    """Messages -> ``notifications`` rows (the payload as JSON text)."""
    rows: list[Mapping[str, Any]] = [
        {"id": m.id, "alert_key": m.alert_key, "kind": m.kind, "channel": m.channel,
         "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
         "created_at": m.created_at, "sent_at": m.sent_at,
         "payload": json.dumps(m.payload, sort_keys=True)}
        for m in messages]
    return pd.DataFrame(rows, columns=NOTIFICATIONS.columns)
