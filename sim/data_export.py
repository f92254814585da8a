"""The simulated organization's AWS Data Export: its cost model as FOCUS 1.0 Parquet in S3.

What Cost Explorer answers (:mod:`sim.costexplorer`) the export says too, line by line: the
same days, accounts, Team tags, services, usage types and amounts to the micro-dollar, one
Parquet file per billing period under ``<export folder>/data/BILLING_PERIOD=YYYY-MM/`` in a
bucket of the management account (created here), as AWS Data Exports writes them. Where the
simulator's topology has the resource a line pays for, the line is split over them
(``ResourceId``): EventBridge lines over the account's rules and buses, SQS lines over its
queues, Lambda lines over its functions; other lines keep no resource.

Columns written (FOCUS 1.0 with AWS columns): BillingPeriodStart, ChargePeriodStart,
ChargePeriodEnd, ChargeCategory ("Usage"), SubAccountId, ServiceName (AWS's product name,
e.g. "Amazon EventBridge"), x_ServiceCode (e.g. "AWSEvents", from which the reader gets Cost
Explorer's SERVICE name back), x_UsageType, ResourceId (null when none), BilledCost,
ConsumedQuantity, ConsumedUnit, BillingCurrency ("USD"), Tags (map: ``user:<tag key>``).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from collectors.cost_export import CE_SERVICE_NAMES, EC2_CODE, period_prefix
from sim.costs import CLOUDWATCH, EC2, EC2_OTHER, EVENTBRIDGE, MICROS, CostModel, list_price

log = logging.getLogger(__name__)

#: The export's name (AWS Data Exports: the folder under the bucket's prefix).
EXPORT_NAME = "orgscope-focus"
#: The S3 prefix the export writes under.
PREFIX = "data-exports"
SQS = "Amazon Simple Queue Service"
LAMBDA = "AWS Lambda"
#: The services whose lines are split over the account's resources of that service.
SPLIT_SERVICES = (EVENTBRIDGE, SQS, LAMBDA)
#: The model's (Cost Explorer) service names -> the export's x_ServiceCode, the reverse of
#: the reader's table (collectors/cost_export.py), EC2's two names both AmazonEC2.
SERVICE_CODES: dict[str, str] = {name: code for code, name in CE_SERVICE_NAMES.items()} | {
    EC2: EC2_CODE, EC2_OTHER: EC2_CODE}
#: The export's ServiceName where AWS's product name is not Cost Explorer's SERVICE name.
PRODUCT_NAMES: dict[str, str] = {EVENTBRIDGE: "Amazon EventBridge",
                                 EC2: "Amazon Elastic Compute Cloud",
                                 EC2_OTHER: "Amazon Elastic Compute Cloud",
                                 CLOUDWATCH: "Amazon CloudWatch"}


def bucket_name(management_account_id: str) -> str:
    """The simulated export bucket, in the management account."""
    return f"orgscope-sim-data-exports-{management_account_id}"


def export_uri(management_account_id: str) -> str:
    """``[collectors.cost] export_uri`` of the simulated export."""
    return f"s3://{bucket_name(management_account_id)}/{PREFIX}/{EXPORT_NAME}"


def topology_resources(rules: Sequence[tuple[str, str, str]], queue_arns: Sequence[str],
                       region: str) -> dict[tuple[str, str], list[str]]:
    """(account, service) -> the resource ARNs its lines are split over: the account's rules
    and the buses they are on (EventBridge), its queues (SQS). Sorted, so splits are stable."""
    found: dict[tuple[str, str], set[str]] = {}
    for account, bus, rule in rules:
        path = f"{bus}/{rule}" if bus != "default" else rule
        arns = found.setdefault((account, EVENTBRIDGE), set())
        arns.add(f"arn:aws:events:{region}:{account}:rule/{path}")
        arns.add(f"arn:aws:events:{region}:{account}:event-bus/{bus}")
    for arn in queue_arns:
        parts = arn.split(":")
        if len(parts) >= 6:
            found.setdefault((parts[4], SQS), set()).add(arn)
    return {key: sorted(arns) for key, arns in found.items()}


def split_micros(micros: np.ndarray, parts: int) -> np.ndarray:
    """Each amount split into ``parts`` integer shares that add up to it exactly (the
    remainder on the first shares): shape (len(micros), parts)."""
    base, remainder = np.divmod(micros, parts)
    shares = np.repeat(base[:, None], parts, axis=1)
    shares += (np.arange(parts)[None, :] < remainder[:, None]).astype(np.int64)
    return shares


def resource_lines(model: CostModel, resources: Mapping[tuple[str, str], list[str]]
                   ) -> pd.DataFrame:
    """The model's records with a resource each: day, month, account_id, team_tag, service,
    usage_type, resource_id ("" when none), micros, quantity. Per (day, account, tag,
    service, usage type) the micros add up to the model's exactly."""
    frame = model.frame
    keyed = list(zip(frame["account_id"], frame["service"], strict=True))
    has = np.array([bool(resources.get(key)) for key in keyed], dtype=bool)
    plain = frame[~has].assign(resource_id="")
    pieces = [plain]
    split = frame[has]
    for (account, service), group in split.groupby(["account_id", "service"], sort=True):
        arns = resources[(str(account), str(service))]
        shares = split_micros(group["micros"].to_numpy(dtype=np.int64), len(arns))
        for i, arn in enumerate(arns):
            piece = group.assign(resource_id=arn, micros=shares[:, i])
            pieces.append(piece[piece["micros"] != 0])
    lines = pd.concat(pieces, ignore_index=True)
    prices = {key: list_price(*key)[0] for key in
              set(zip(lines["service"], lines["usage_type"], strict=True))}
    unit = np.array([prices[key] for key in zip(lines["service"], lines["usage_type"],
                                                 strict=True)])
    lines["quantity"] = lines["micros"].to_numpy() / MICROS / unit
    return lines.sort_values(["day", "account_id", "team_tag", "service", "usage_type",
                              "resource_id"], kind="stable").reset_index(drop=True)


def _timestamps(days: pd.Series) -> pa.Array:
    moments = pd.to_datetime(days).dt.tz_localize(UTC)
    return pa.array(moments, type=pa.timestamp("ms", tz="UTC"))


def focus_table(lines: pd.DataFrame, tag_key: str) -> pa.Table:
    """One billing period's lines (:func:`resource_lines`) as a FOCUS 1.0 table."""
    starts = pd.to_datetime(lines["day"])
    tags = [[(f"user:{tag_key}", tag)] if tag else [] for tag in lines["team_tag"]]
    units = [list_price(s, u)[1] for s, u in zip(lines["service"], lines["usage_type"],
                                                  strict=True)]
    return pa.table({
        "BillingPeriodStart": _timestamps(starts.dt.to_period("M").dt.start_time),
        "ChargePeriodStart": _timestamps(starts),
        "ChargePeriodEnd": _timestamps(starts + pd.Timedelta(days=1)),
        "ChargeCategory": pa.array(["Usage"] * len(lines), type=pa.string()),
        "SubAccountId": pa.array(lines["account_id"].astype(str), type=pa.string()),
        "ServiceName": pa.array([PRODUCT_NAMES.get(s, s) for s in lines["service"]],
                                type=pa.string()),
        "x_ServiceCode": pa.array([SERVICE_CODES.get(s) for s in lines["service"]],
                                  type=pa.string()),
        "x_UsageType": pa.array(lines["usage_type"].astype(str), type=pa.string()),
        "ResourceId": pa.array([r or None for r in lines["resource_id"]], type=pa.string()),
        "BilledCost": pa.array(lines["micros"].to_numpy() / MICROS, type=pa.float64()),
        "ConsumedQuantity": pa.array(lines["quantity"].to_numpy(), type=pa.float64()),
        "ConsumedUnit": pa.array(units, type=pa.string()),
        "BillingCurrency": pa.array(["USD"] * len(lines), type=pa.string()),
        "Tags": pa.array(tags, type=pa.map_(pa.string(), pa.string())),
    })


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


@dataclass
class DataExport:
    """Writes a cost model's FOCUS export into the management account's bucket."""

    management_account_id: str
    tag_key: str = "Team"

    @property
    def bucket(self) -> str:
        return bucket_name(self.management_account_id)

    @property
    def uri(self) -> str:
        return export_uri(self.management_account_id)

    def write(self, s3: Any, model: CostModel,
              resources: Mapping[tuple[str, str], list[str]]) -> int:
        """Create the bucket when missing and (over)write one file per billing period and
        its manifest; returns the files written. ``s3``: an admin S3 client of the
        management account."""
        try:
            s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            s3.create_bucket(Bucket=self.bucket)
        lines = resource_lines(model, resources)
        folder = f"{PREFIX}/{EXPORT_NAME}"
        written = 0
        for month, period in lines.groupby("month", sort=True):
            key = f"{period_prefix(folder, str(month))}{EXPORT_NAME}-00001.snappy.parquet"
            s3.put_object(Bucket=self.bucket, Key=key,
                          Body=parquet_bytes(focus_table(period, self.tag_key)))
            manifest = {"exportName": EXPORT_NAME, "billingPeriod": str(month),
                        "dataFiles": [f"s3://{self.bucket}/{key}"],
                        "generatedAt": datetime.now(UTC).isoformat()}
            s3.put_object(
                Bucket=self.bucket,
                Key=f"{folder}/metadata/BILLING_PERIOD={month}/{EXPORT_NAME}-Manifest.json",
                Body=json.dumps(manifest).encode())
            written += 1
        log.info("data export: wrote %d billing periods (%d lines) to %s", written,
                 len(lines), self.uri)
        return written
