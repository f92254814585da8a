"""Hand-made frames for the alert rules' tests: verdict rows, runs, heal actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from orgscope.config import Config
from orgscope.datasets import HEAL_ACTIONS, RULE_HEALTH
from orgscope.plugins import load_config

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ORDERS = "777777777777"
PAYMENTS = "999999999999"
CENTRAL = "121212121212"
REGION = "us-east-1"


def config(**alerts: Any) -> Config:
    """The repository's config.toml (QuickGrocer), with [alerts] keys replaced."""
    loaded = load_config(ROOT / "config.toml")
    if alerts:
        loaded = loaded.model_copy(update={"alerts": loaded.alerts.model_copy(update=alerts)})
    return loaded


def verdict(rule: str, verdict: str = "OK", *, account_id: str = ORDERS,
            bus: str = "central-bus", fired: list[str] | None = None,
            metrics: dict[str, float] | None = None, dlq: list[dict[str, Any]] | None = None,
            matched: dict[str, Any] | None = None, reasons: list[str] | None = None,
            at: datetime = NOW, stale: dict[str, Any] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"fired": fired if fired is not None else
                               ([] if verdict == "OK" else [verdict]),
                               "metrics": metrics or {}, "dlq": dlq or []}
    if matched is not None:
        details["matched"] = matched
    if stale is not None:
        details["stale"] = stale
    return {"account_id": account_id, "region": REGION, "bus": bus, "rule": rule,
            "verdict": verdict, "reasons": reasons or [], "details": json.dumps(details),
            "evaluated_at": at}


def health(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=RULE_HEALTH.columns)


def runs(account_id: str, statuses: list[str], error: str = "AccessDenied on AssumeRole",
         end: datetime = NOW) -> pd.DataFrame:
    """Inventory runs of one account, oldest first, five minutes apart."""
    rows = []
    for i, status in enumerate(statuses):
        at = end - timedelta(minutes=5 * (len(statuses) - 1 - i))
        rows.append({"run_id": f"cycle-{i:03d}", "account_id": account_id, "region": REGION,
                     "started_at": at, "status": status,
                     "error": None if status == "ok" else error})
    return pd.DataFrame(rows)


def heal_action(action: str, result: str, reason: str, *, rule: str | None = "order-placed",
                at: datetime = NOW, heal_id: str = "heal-1") -> dict[str, Any]:
    return {"id": heal_id, "account_id": CENTRAL if rule else None,
            "account_name": "event-bus" if rule else None, "region": REGION if rule else None,
            "bus": "central-bus" if rule else None, "rule": rule,
            "team": "platform" if rule else None, "action": action, "dry_run": False,
            "result": result, "reason": reason, "disabled_by": None, "disabled_at": None,
            "at": at, "actor": "arn:aws:sts::121212121212:assumed-role/OrgScopeAutoHeal/x"}


def heal(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=HEAL_ACTIONS.columns)
