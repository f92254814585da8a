"""The seed article's overhead categories, and orgscope's own API spend.

:func:`overhead_category` maps a Cost Explorer (service, usage type) to a category by rule,
not by a fixed list, so region-prefixed usage types (``EUW1-NatGateway-Bytes``) map like
us-east-1's (which carry no prefix for older services). The table is in docs/cost.md.
"""

from __future__ import annotations

import re

import pandas as pd

_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d?-(?=[A-Za-z])")

#: Prices of orgscope's own requests (USD).
CLOUDWATCH_PER_METRIC = 0.00001  # GetMetricData: $0.01 per 1,000 metrics requested
COST_EXPLORER_PER_REQUEST = 0.01  # GetCostAndUsage: $0.01 per request (page)
XRAY_PER_TRACE = 0.0000005  # $0.50 per million traces retrieved (BatchGetTraces)
#: S3 Standard requests, us-east-1 list prices (aws.amazon.com/s3/pricing): the cost
#: collector's data export (ListObjectsV2 is a LIST request, GetObject a GET).
S3_LIST_PER_REQUEST = 0.005 / 1000  # $0.005 per 1,000 LIST requests
S3_GET_PER_REQUEST = 0.0004 / 1000  # $0.0004 per 1,000 GET requests


def usage_kind(usage_type: str) -> str:
    """The usage type without its region prefix: 'USE1-Event-64K-Chunks' -> 'Event-64K-Chunks'."""
    return _REGION_PREFIX.sub("", usage_type, count=1)


def overhead_category(service: str, usage_type: str) -> str | None:  # noqa: PLR0911
    """The overhead category of one (service, usage type), or None."""
    kind = usage_kind(usage_type)
    if service in ("CloudWatch Events", "Amazon EventBridge") and kind.startswith("Event"):
        return "EventBridge events"
    if kind == "DataTransfer-Regional-Bytes":
        return "Cross-AZ data transfer"
    if kind.startswith("NatGateway-"):
        return "NAT gateways"
    if service == "AmazonCloudWatch" and kind in ("DataProcessing-Bytes", "TimedStorage-ByteHrs",
                                                  "VendedLog-Bytes"):
        return "CloudWatch Logs"
    if service == "AWS Secrets Manager":
        return "Secrets Manager"
    if service == "AWS Systems Manager" and kind.startswith("PS-"):
        return "Parameter Store API calls"
    return None


def overhead_by_team(attributed: pd.DataFrame) -> pd.DataFrame:
    """month, team, category, amount for the overhead categories in ``attributed``."""
    columns = ["month", "team", "category", "amount"]
    if attributed.empty:
        return pd.DataFrame(columns=columns)
    pairs = attributed[["service", "usage_type"]].drop_duplicates()
    mapping = {(s, u): overhead_category(s, u) for s, u in pairs.itertuples(index=False)}
    category = [mapping[(s, u)] for s, u in zip(attributed["service"],
                                                attributed["usage_type"], strict=True)]
    frame = attributed.assign(category=pd.Series(category, index=attributed.index,
                                                 dtype=object)).dropna(subset=["category"])
    return frame.groupby(["month", "team", "category"])["amount"].sum().reset_index()[columns]


def operation_calls_sql(operation: str, column: str = "api_calls_by_operation") -> str:
    """DuckDB SQL for the calls of one ``operation`` ("service:Operation") in a run, from its
    ``api_calls_by_operation`` JSON text ``column``: 0 when the text names no call of that
    service, is not a JSON object, or holds no integer (only runs that mention the service
    are parsed, so the scan stays cheap)."""
    service = operation.split(":", 1)[0]
    return (f"coalesce(TRY_CAST(CASE WHEN contains({column}, '\"{service}:') "
            f"AND json_valid({column}) AND json_type({column}) = 'OBJECT' "
            f"THEN json_extract_string({column}, '$.\"{operation}\"') END "
            "AS BIGINT), 0)")


def ce_requests_sql(column: str = "api_calls_by_operation") -> str:
    """DuckDB SQL for the ``ce:GetCostAndUsage`` calls of a run (:func:`operation_calls_sql`)."""
    return operation_calls_sql("ce:GetCostAndUsage", column)


def api_spend(usage: pd.DataFrame) -> pd.DataFrame:
    """orgscope's own API spend per month, priced from ``usage`` (month, metrics, ce_calls,
    traces: :func:`orgscope.cost.store_io.read_api_usage`): month, api, requests, amount.

    X-Ray also bills traces *scanned* by GetTraceSummaries, which no response reports: the
    X-Ray line counts retrieved traces only (docs/traces.md)."""
    columns = ["month", "api", "requests", "amount"]
    rows = []
    for month, metrics, ce, traces in zip(usage["month"], usage["metrics"], usage["ce_calls"],
                                          usage["traces"], strict=True):
        rows.append({"month": str(month), "api": "CloudWatch GetMetricData (metrics)",
                     "requests": int(metrics), "amount": int(metrics) * CLOUDWATCH_PER_METRIC})
        rows.append({"month": str(month), "api": "Cost Explorer GetCostAndUsage",
                     "requests": int(ce), "amount": int(ce) * COST_EXPLORER_PER_REQUEST})
        rows.append({"month": str(month), "api": "X-Ray BatchGetTraces (traces)",
                     "requests": int(traces), "amount": int(traces) * XRAY_PER_TRACE})
    return pd.DataFrame(rows, columns=columns)
