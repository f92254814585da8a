"""A store filled like a few collection cycles of QuickGrocer, for dashboard tests and demos.

Imported as ``dashboard_sample`` (pytest puts this folder on sys.path). :func:`fill_org_store`
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

import pandas as pd

from collectors.inventory import EVENT_BUSES, INVENTORY, RULES
from orgscope.datasets import ACCOUNTS, RUNS
from orgscope.store import Store

REPO = Path(__file__).resolve().parents[2]
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
RULE_SPECS: tuple[tuple[str, str, str, str, str, bool], ...] = (
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


def _target_arn(rule: str, target_account: str, region: str) -> str:
    short = re.sub(r"-(to|from)-.*$", "", rule)
    if rule.startswith("archive") or rule.endswith("-from-central"):
        return f"arn:aws:events:{region}:{target_account}:event-bus/default"
    if rule.startswith("orgscope") or rule.endswith("reconcile"):
        return f"arn:aws:lambda:{region}:{target_account}:function:{rule}"
    return f"arn:aws:sqs:{region}:{target_account}:{short}-queue"


def _rules_frame(cycle: Cycle, region: str, specs: Sequence[tuple[str, ...]]) -> pd.DataFrame:
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
            pattern = json.dumps({"detail-type": [detail_type]})
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
                "tags": json.dumps({"Team": "platform"}),
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
            rows.append(
                {
                    "account_id": account_id,
                    "region": region,
                    "bus": bus,
                    "arn": f"arn:aws:events:{region}:{account_id}:event-bus/{bus}",
                    "policy": None,
                    "allowed_principals": [],
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
