"""Cost from an AWS Data Export: the organization's FOCUS 1.0 or CUR 2.0 Parquet in S3.

AWS APIs wrapped: ``s3:ListObjectsV2`` (IAM action ``s3:ListBucket``) and ``s3:GetObject`` on
the export's bucket, in the management (payer) account through the read role. An export
writes ``<export folder>/data/BILLING_PERIOD=YYYY-MM/*.parquet`` (overwritten in place a few
times a day); ``export_uri`` names the export folder (``s3://bucket/<prefix>/<export name>``).

What is returned (docs/cost.md, "Data exports"):

* :func:`export_rows` (pure): the export's lines summed per date, account_id, team_tag,
  service (Cost Explorer's SERVICE name where the service code is known: :func:`ce_service`),
  usage_type and resource_id ("" when the line has none), with amount (the unblended
  cost: FOCUS BilledCost, CUR line_item_unblended_cost), usage_quantity (null when absent)
  and currency;
* :func:`daily_rows` and :func:`resource_rows`: those lines at the grain of ``cost_daily``
  and of ``cost_resources``.

Invariants:

* Only the billing periods the collector's window covers are listed and read.
* :class:`ExportUnreadable` means the export as a whole cannot be used this run (access
  denied, no object for an open month, a file that is not Parquet, a required column
  missing): the cost collector then reads Cost Explorer instead.
* A line that cannot be read (no date, no account, an amount that is not a number) is
  counted, logged once per read and skipped; the rest are kept.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from orgscope.cost.categories import usage_kind
from orgscope.cost.review import add_months

log = logging.getLogger(__name__)

ExportFormat = Literal["focus-1.0", "cur-2.0"]
#: A ListObjectsV2 answer that keeps continuing past this many pages is a bug.
MAX_PAGES = 1000


class ExportUnreadable(Exception):
    """The export cannot be used this run; the message says why."""


@dataclass(frozen=True)
class ExportColumns:
    """Where each value of a line is in one export format. The first four are required."""

    day: str
    account: str
    service: str
    amount: str
    usage_type: str
    resource: str
    quantity: str
    tags: str
    currency: str
    #: The service code (FOCUS x_ServiceCode; CUR 2.0's product code is its service column).
    service_code: str

    @property
    def required(self) -> tuple[str, ...]:
        return (self.day, self.account, self.service, self.amount)


#: AWS Data Exports column names (docs.aws.amazon.com/cur/latest/userguide, the table
#: dictionaries "FOCUS 1.0 with AWS columns" and "CUR 2.0").
COLUMNS: dict[str, ExportColumns] = {
    "focus-1.0": ExportColumns(
        day="ChargePeriodStart", account="SubAccountId", service="ServiceName",
        amount="BilledCost", usage_type="x_UsageType", resource="ResourceId",
        quantity="ConsumedQuantity", tags="Tags", currency="BillingCurrency",
        service_code="x_ServiceCode"),
    "cur-2.0": ExportColumns(
        day="line_item_usage_start_date", account="line_item_usage_account_id",
        service="line_item_product_code", amount="line_item_unblended_cost",
        usage_type="line_item_usage_type", resource="line_item_resource_id",
        quantity="line_item_usage_amount", tags="resource_tags",
        currency="line_item_currency_code", service_code="line_item_product_code"),
}

#: AWS service codes -> Cost Explorer's SERVICE names, for the services orgscope's overhead
#: categories, flow allocation and simulator name (docs/cost.md, "Data exports"): the export
#: says "AWSEvents" / "Amazon EventBridge" where Cost Explorer says "CloudWatch Events". A
#: code not listed keeps the export's service name. AmazonEC2 is split by usage type
#: (:data:`EC2_COMPUTE_USAGE`) as Cost Explorer splits it.
CE_SERVICE_NAMES: dict[str, str] = {
    "AWSEvents": "CloudWatch Events",
    "AWSQueueService": "Amazon Simple Queue Service",
    "AWSLambda": "AWS Lambda",
    "AmazonCloudWatch": "AmazonCloudWatch",
    "AWSSecretsManager": "AWS Secrets Manager",
    "AWSSystemsManager": "AWS Systems Manager",
    "AWSCostExplorer": "AWS Cost Explorer",
    "AWSCloudTrail": "AWS CloudTrail",
    "AWSXRay": "AWS X-Ray",
    "AmazonApiGateway": "Amazon API Gateway",
    "AmazonDynamoDB": "Amazon DynamoDB",
    "AmazonElastiCache": "Amazon ElastiCache",
    "AmazonRDS": "Amazon Relational Database Service",
    "AmazonS3": "Amazon Simple Storage Service",
    "AmazonSNS": "Amazon Simple Notification Service",
    "AmazonStates": "AWS Step Functions",
}
EC2_CODE = "AmazonEC2"
#: EC2 usage types Cost Explorer counts as "Amazon Elastic Compute Cloud - Compute"; every
#: other EC2 usage type (EBS, NAT gateways, data transfer, Elastic IPs) is "EC2 - Other".
EC2_COMPUTE_USAGE = ("BoxUsage", "SpotUsage", "DedicatedUsage", "HostUsage", "HostBoxUsage",
                     "ReservedHostUsage", "UnusedBox", "UnusedDed")


def ce_service(code: str, name: str, usage_type: str) -> str:
    """Cost Explorer's SERVICE name of an export line: from its service ``code`` where
    :data:`CE_SERVICE_NAMES` knows it (EC2 by usage type), else the export's ``name``."""
    if code == EC2_CODE:
        compute = usage_kind(usage_type).startswith(EC2_COMPUTE_USAGE)
        return "Amazon Elastic Compute Cloud - Compute" if compute else "EC2 - Other"
    return CE_SERVICE_NAMES.get(code, name)

LINE_COLUMNS = ["date", "account_id", "team_tag", "service", "usage_type", "resource_id",
                "amount", "usage_quantity", "currency"]


def tag_keys(tag_key: str) -> tuple[str, ...]:
    """The keys a cost allocation tag has in an export's tag map: ``user:Team`` (FOCUS),
    ``user_team``/``user_Team`` (CUR 2.0 resource_tags), or the bare key."""
    return (f"user:{tag_key}", f"user_{tag_key}", f"user_{tag_key.lower()}", tag_key)


def tag_value(tags: Any, keys: tuple[str, ...]) -> str:
    """One line's value of the tag (the first of ``keys`` present) from its tag map, which
    Parquet gives as a list of (key, value) pairs, a dict, or JSON text; "" when absent or
    unreadable."""
    if tags is None or (isinstance(tags, float) and math.isnan(tags)):
        return ""
    if isinstance(tags, str):
        try:
            tags = json.loads(tags) if tags else {}
        except ValueError:
            return ""
    if isinstance(tags, Mapping):
        found = dict(tags)
    else:
        try:
            found = dict(tags)
        except (TypeError, ValueError):
            return ""
    for key in keys:
        value = found.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("").str.strip()


def export_rows(table: pa.Table, export_format: ExportFormat, tag_key: str, start: date,
                end: date) -> pd.DataFrame:
    """The export's lines in [start, end), summed per day, account, tag value, service,
    usage type and resource (:data:`LINE_COLUMNS`; resource_id "" when the line names none,
    usage_quantity null when the export gives none).

    Raises :class:`ExportUnreadable` when a required column is missing. Lines without a date
    or an account, or whose amount is not a number, are logged and skipped.
    """
    names = COLUMNS[export_format]
    missing = [c for c in names.required if c not in table.column_names]
    if missing:
        raise ExportUnreadable(f"{export_format} export lacks the column(s) "
                               f"{', '.join(missing)}")
    n = table.num_rows

    def column(name: str) -> pd.Series:
        if name not in table.column_names:
            return pd.Series([None] * n, dtype="object")
        values: pd.Series = table.column(name).to_pandas()
        return values

    days = pd.to_datetime(column(names.day), utc=True, errors="coerce")
    amounts = pd.to_numeric(column(names.amount), errors="coerce").astype("float64")
    usage_types = _text(column(names.usage_type))
    frame = pd.DataFrame({
        "date": days.dt.date,
        "account_id": _text(column(names.account)),
        "service": _services(_text(column(names.service_code)), _text(column(names.service)),
                             usage_types),
        "usage_type": usage_types,
        "resource_id": _text(column(names.resource)),
        "amount": amounts,
        "usage_quantity": pd.to_numeric(column(names.quantity), errors="coerce"
                                        ).astype("float64"),
        "currency": _text(column(names.currency)).replace("", "USD"),
    })
    bad = days.isna().to_numpy() | ~pd.Series(amounts).map(math.isfinite).to_numpy() | \
        (frame["account_id"] == "").to_numpy()
    if bad.any():
        first = int(bad.argmax())
        log.warning("cost export: skipped %d of %d lines without a date, an account or a "
                    "numeric amount (first: line %d, %s=%r, %s=%r)", int(bad.sum()), n, first,
                    names.day, column(names.day).iloc[first], names.amount,
                    column(names.amount).iloc[first])
    keys = tag_keys(tag_key)
    tags = column(names.tags)
    frame["team_tag"] = [tag_value(t, keys) for t in tags] if names.tags in table.column_names \
        else ""
    frame = frame[~bad]
    frame = frame[(frame["date"] >= start) & (frame["date"] < end)]
    if frame.empty:
        return pd.DataFrame(columns=LINE_COLUMNS)
    found: pd.DataFrame = sum_lines(frame, [*LINE_COLUMNS[:6], "currency"])[LINE_COLUMNS]
    return found


def sum_lines(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """amount and usage_quantity summed per ``keys`` (usage_quantity null where every line
    of the group has none), keys as columns, sorted by them."""
    grouped = frame.groupby(keys, sort=True, dropna=False)
    summed = grouped[["amount", "usage_quantity"]].sum()
    counted = grouped["usage_quantity"].count()
    summed["usage_quantity"] = summed["usage_quantity"].where(counted > 0)
    return summed.reset_index()


def _services(codes: pd.Series, names: pd.Series, usage_types: pd.Series) -> pd.Series:
    """:func:`ce_service` of every line, once per distinct (code, name, usage type)."""
    keys = list(zip(codes, names, usage_types, strict=True))
    known = {key: ce_service(*key) for key in set(keys)}
    return pd.Series([known[key] for key in keys], index=codes.index, dtype=object)


def daily_rows(lines: pd.DataFrame, collected_at: datetime, estimated_from: date
               ) -> pd.DataFrame:
    """:func:`export_rows` at ``cost_daily``'s grain: resources summed away. The export has no
    per-day Estimated flag: a day from ``estimated_from`` (the first day whose month's bill is
    not final) on is estimated."""
    columns = ["date", "account_id", "team_tag", "service", "usage_type", "amount",
               "currency", "estimated", "collected_at", "usage_quantity"]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    daily = sum_lines(lines, ["date", "account_id", "team_tag", "service", "usage_type",
                              "currency"])
    daily["estimated"] = daily["date"] >= estimated_from
    daily["collected_at"] = collected_at
    return daily[columns]


def resource_rows(lines: pd.DataFrame, collected_at: datetime) -> pd.DataFrame:
    """The lines of :func:`export_rows` that name a resource, at ``cost_resources``'s grain."""
    columns = ["date", "account_id", "service", "usage_type", "resource_id", "team_tag",
               "amount", "usage_quantity", "currency", "collected_at"]
    named = lines[lines["resource_id"] != ""] if not lines.empty else lines
    if named.empty:
        return pd.DataFrame(columns=columns)
    named = named.assign(collected_at=collected_at)
    return named[columns].reset_index(drop=True)


# --- where the export is (pure) --------------------------------------------------------------


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix"); ValueError otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"export_uri {uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"export_uri {uri!r} names no bucket")
    return bucket, prefix.strip("/")


def billing_periods(start: date, end: date) -> list[str]:
    """The billing periods ("YYYY-MM") of the days in [start, end), oldest first."""
    periods = []
    month = start.replace(day=1)
    while month < end:
        periods.append(month.strftime("%Y-%m"))
        month = add_months(month, 1)
    return periods


def period_prefix(prefix: str, period: str) -> str:
    """Where one billing period's Parquet files are under the export folder ``prefix``."""
    return f"{prefix}/data/BILLING_PERIOD={period}/" if prefix else \
        f"data/BILLING_PERIOD={period}/"


# --- the S3 edge -----------------------------------------------------------------------------


def list_parquet(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every ``.parquet`` key under ``prefix`` (ListObjectsV2, one request per page)."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            params["ContinuationToken"] = token
        page = s3.list_objects_v2(**params)
        for item in page.get("Contents") or []:
            key = item.get("Key")
            if isinstance(key, str) and key.endswith(".parquet"):
                yield key
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if not token:
            return
    raise ExportUnreadable(f"s3://{bucket}/{prefix}: more than {MAX_PAGES} pages of objects")


def read_parquet(s3: Any, bucket: str, key: str, wanted: set[str]) -> pa.Table:
    """One Parquet object (GetObject), only the ``wanted`` columns it has."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        file = pq.ParquetFile(io.BytesIO(body))
        present = [name for name in file.schema_arrow.names if name in wanted]
        return file.read(columns=present)
    except (pa.ArrowException, OSError) as error:
        raise ExportUnreadable(f"s3://{bucket}/{key} is not a readable Parquet file: "
                               f"{error}") from error


def read_export(s3: Any, uri: str, export_format: ExportFormat, periods: list[str],
                open_periods: set[str]) -> pa.Table:
    """The wanted columns of every Parquet file of ``periods``, as one table.

    Raises :class:`ExportUnreadable` when S3 refuses, when an open period has no file, or
    when a file is not Parquet; a closed period without files is logged (the export may
    start later than the history) and skipped."""
    bucket, prefix = parse_uri(uri)
    names = COLUMNS[export_format]
    wanted = {names.day, names.account, names.service, names.amount, names.usage_type,
              names.resource, names.quantity, names.tags, names.currency, names.service_code}
    tables: list[pa.Table] = []
    try:
        for period in periods:
            keys = sorted(list_parquet(s3, bucket, period_prefix(prefix, period)))
            if not keys:
                if period in open_periods:
                    raise ExportUnreadable(f"no Parquet file for the open billing period "
                                           f"{period} under {uri}")
                log.info("cost export: no file for billing period %s under %s", period, uri)
                continue
            tables.extend(read_parquet(s3, bucket, key, wanted) for key in keys)
    except (ClientError, BotoCoreError) as error:
        raise ExportUnreadable(f"cannot read {uri}: {error}") from error
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as error:
        raise ExportUnreadable(f"the files under {uri} do not share a schema: {error}") \
            from error
