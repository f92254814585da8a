"""Discovered schemas and the rules that depend on them, as the demo has them once the payment
service's canary of "Payment Processed" version 3 (``purpose`` moved under ``context``) was
discovered: written into a store made by :func:`testkit.dashboard_sample.fill_org_store`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from collectors.schemas import DISCOVERED_REGISTRY, SCHEMAS
from orgscope.datasets import EVENT_SCHEMAS, RULES, RUNS
from orgscope.schema_drift import fields_json, schema_fields
from orgscope.store import Store
from sim.discovery import openapi_content, schema_name
from sim.topology import PAYMENT_SOURCE, SCHEMA_CHANGES, STREAMS, apply_change

CENTRAL = "121212121212"
ORDERS = "777777777777"
MOBILE = "222222222222"
#: (account, bus, rule, pattern's detail) of the rules that test Payment Processed's fields.
DEPENDENT_RULES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (CENTRAL, "central-bus", "payment-processed-to-subscriptions", {"purpose": ["subscription"]}),
    (MOBILE, "default", "payment-processed-to-subscriptions", {"purpose": ["subscription"]}),
    (CENTRAL, "central-bus", "payment-events-to-order-processing", {"purpose": ["order"]}),
    (ORDERS, "default", "payment-events-to-order-processing", {"purpose": ["order"]}),
    (CENTRAL, "central-bus", "large-payments-to-finance", {"amount": [{"numeric": [">", 100]}]}),
)
BROKEN_RULES = 4


def _versions() -> list[dict[str, Any]]:
    """Payment Processed's detail in versions 1 (as built), 2 (currency) and 3 (context)."""
    stream = next(s for s in STREAMS if s.detail_type == "Payment Processed")
    base = stream.variants[0].detail
    v2 = apply_change(base, SCHEMA_CHANGES["payments-currency"])
    return [base, v2, apply_change(v2, SCHEMA_CHANGES["payments-context"])]


def schema_rows(collected_at: datetime, region: str = "us-east-1") -> pd.DataFrame:
    rows = []
    for number, detail in enumerate(_versions(), start=1):
        event = {"source": PAYMENT_SOURCE, "detail-type": "Payment Processed",
                 "detail": detail}
        parsed = schema_fields(openapi_content(event))
        rows.append({"account_id": CENTRAL, "region": region,
                     "registry": DISCOVERED_REGISTRY,
                     "schema_name": schema_name(PAYMENT_SOURCE, "Payment Processed"),
                     "source": parsed.source, "detail_type": parsed.detail_type,
                     "version": str(number),
                     "version_created": collected_at - timedelta(hours=3 - number),
                     "content_type": "OpenApi3", "fields": fields_json(parsed.fields),
                     "field_count": len(parsed.fields), "collected_at": collected_at})
    return pd.DataFrame(rows, columns=EVENT_SCHEMAS.columns)


def _rule_rows(collected_at: datetime, region: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for account, bus, rule, detail in DEPENDENT_RULES:
        pattern = {"source": [PAYMENT_SOURCE], "detail-type": ["Payment Processed"],
                   "detail": detail}
        rows.append({"account_id": account, "region": region, "bus": bus, "rule": rule,
                     "arn": f"arn:aws:events:{region}:{account}:rule/{bus}/{rule}",
                     "state": "ENABLED", "description": "Payment Processed by purpose",
                     "event_pattern": json.dumps(pattern), "schedule_expression": None,
                     "managed_by": None, "targets": "[]", "target_count": 0, "dlq_arns": [],
                     "tags": "{}", "collected_at": collected_at})
    return pd.DataFrame(rows, columns=RULES.columns)


def fill_schema_drift(store: Store, last_cycle: datetime, region: str = "us-east-1") -> None:
    """The discovered versions (a schemas run in the central account at ``last_cycle``) and
    the rules depending on them, added to the inventory snapshot taken at ``last_cycle``."""
    run_id = f"{last_cycle:%Y%m%dT%H%M%SZ}-schemas"
    store.write(RULES.name, _rule_rows(last_cycle, region), run_id)
    store.write(EVENT_SCHEMAS.name, schema_rows(last_cycle, region), run_id)
    store.write(RUNS.name, pd.DataFrame([{
        "run_id": run_id, "collector": SCHEMAS.name, "account_id": CENTRAL, "region": region,
        "started_at": last_cycle, "duration_s": 0.4, "status": "ok", "error": None,
        "api_calls": 5, "api_calls_by_operation": json.dumps(
            {"schemas:ListDiscoverers": 1, "schemas:ListSchemas": 1,
             "schemas:ListSchemaVersions": 1, "schemas:DescribeSchema": 2}),
        "metrics_requested": 0, "traces_retrieved": 0, "rows": 3}], columns=RUNS.columns),
        run_id)


#: A second drifting detail-type, for links that must select something other than the
#: picker's first (Payment Processed breaks at least as many rules in any scope and its source
#: sorts first, so it is listed first): the warehouse's "Stock Reserved" version 2 sends
#: ``quantity`` as a string, which one mobile rule tests as a number.
STOCK_SOURCE = "quickgrocer.warehouse"
STOCK_TYPE = "Stock Reserved"
STOCK_RULE = (MOBILE, "default", "stock-reserved-to-mobile")
STOCK_KEY = f"{CENTRAL}|us-east-1|{STOCK_SOURCE}|{STOCK_TYPE}"


def add_stock_drift(store: Store, last_cycle: datetime, region: str = "us-east-1") -> None:
    """"Stock Reserved" versions 1 and 2 in the central registry and the mobile rule that
    version 2 breaks, added to the snapshots :func:`fill_schema_drift` wrote at
    ``last_cycle``."""
    run_id = f"{last_cycle:%Y%m%dT%H%M%SZ}-schemas-stock"
    versions = [{"detail.sku": "string", "detail.quantity": "number"},
                {"detail.sku": "string", "detail.quantity": "string"}]
    store.write(EVENT_SCHEMAS.name, pd.DataFrame([{
        "account_id": CENTRAL, "region": region, "registry": DISCOVERED_REGISTRY,
        "schema_name": schema_name(STOCK_SOURCE, STOCK_TYPE), "source": STOCK_SOURCE,
        "detail_type": STOCK_TYPE, "version": str(number),
        "version_created": last_cycle - timedelta(hours=2 - number),
        "content_type": "OpenApi3", "fields": fields_json(fields), "field_count": len(fields),
        "collected_at": last_cycle} for number, fields in enumerate(versions, start=1)],
        columns=EVENT_SCHEMAS.columns), run_id)
    account, bus, rule = STOCK_RULE
    pattern = {"source": [STOCK_SOURCE], "detail-type": [STOCK_TYPE],
               "detail": {"quantity": [{"numeric": [">", 0]}]}}
    store.write(RULES.name, pd.DataFrame([{
        "account_id": account, "region": region, "bus": bus, "rule": rule,
        "arn": f"arn:aws:events:{region}:{account}:rule/{bus}/{rule}", "state": "ENABLED",
        "description": "Stock reservations to the mobile app",
        "event_pattern": json.dumps(pattern), "schedule_expression": None, "managed_by": None,
        "targets": "[]", "target_count": 0, "dlq_arns": [], "tags": "{}",
        "collected_at": last_cycle}], columns=RULES.columns), run_id)
