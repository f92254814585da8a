"""The data-export side of the cost collector without AWS: the two formats' columns, the
windows, bad lines, the S3 layout, and the fallback to Cost Explorer."""

from __future__ import annotations

import io
import logging
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from collectors.cost import (
    CostCollectorConfig,
    collect_cost,
    probe_export_get,
    probe_export_list,
)
from collectors.cost_export import (
    LINE_COLUMNS,
    ExportUnreadable,
    billing_periods,
    ce_service,
    daily_rows,
    export_rows,
    parse_uri,
    period_prefix,
    read_export,
    resource_rows,
    tag_value,
)
from orgscope.accounts import Account
from orgscope.collect import CollectContext, Window
from orgscope.datasets import COST_DAILY, COST_RESOURCES

ACCOUNT = "777777777777"
RULE = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/central-bus/orders"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders"
URI = "s3://payer-exports/data-exports/focus"
#: A fixed day to derive every test date from (never "today").
T0 = date(2026, 11, 26)


def _ts(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def focus(lines: list[dict[str, Any]], *, drop: tuple[str, ...] = ()) -> pa.Table:
    """A FOCUS 1.0 table of ``lines`` (day, service, usage_type, resource, cost, quantity,
    team), without the ``drop`` columns."""
    columns: dict[str, pa.Array] = {
        "ChargePeriodStart": pa.array([_ts(x["day"]) if x["day"] else None for x in lines],
                                      type=pa.timestamp("ms", tz="UTC")),
        "SubAccountId": pa.array([x.get("account", ACCOUNT) for x in lines]),
        "ServiceName": pa.array([x.get("service", "CloudWatch Events") for x in lines]),
        "x_UsageType": pa.array([x.get("usage_type", "USE1-Event-64K-Chunks") for x in lines]),
        "ResourceId": pa.array([x.get("resource") for x in lines], type=pa.string()),
        "BilledCost": pa.array([x["cost"] for x in lines], type=pa.float64()),
        "ConsumedQuantity": pa.array([x.get("quantity") for x in lines], type=pa.float64()),
        "BillingCurrency": pa.array(["USD"] * len(lines)),
        "Tags": pa.array([[("user:Team", x["team"])] if x.get("team") else [] for x in lines],
                         type=pa.map_(pa.string(), pa.string())),
    }
    return pa.table({k: v for k, v in columns.items() if k not in drop})


def cur2(lines: list[dict[str, Any]]) -> pa.Table:
    """A CUR 2.0 table of ``lines``: hourly usage start, costs as decimal text."""
    return pa.table({
        "line_item_usage_start_date": pa.array([_ts(x["day"], 13) for x in lines],
                                               type=pa.timestamp("us")),
        "line_item_usage_account_id": pa.array([ACCOUNT] * len(lines)),
        "line_item_product_code": pa.array(["AWSEvents"] * len(lines)),
        "line_item_usage_type": pa.array(["USE1-Event-64K-Chunks"] * len(lines)),
        "line_item_resource_id": pa.array([x.get("resource", "") for x in lines]),
        "line_item_unblended_cost": pa.array([str(x["cost"]) for x in lines]),
        "line_item_usage_amount": pa.array([x.get("quantity") for x in lines],
                                           type=pa.float64()),
        "resource_tags": pa.array([[("user_team", x["team"])] if x.get("team") else []
                                   for x in lines], type=pa.map_(pa.string(), pa.string())),
    })


def _window(first: date, last: date) -> tuple[date, date]:
    return first, last + timedelta(days=1)


# --- parsing ---------------------------------------------------------------------------------


def test_focus_lines_sum_per_day_account_tag_service_usage_type_and_resource() -> None:
    day = T0
    table = focus([
        {"day": day, "resource": RULE, "cost": 1.25, "quantity": 1_250_000, "team": "orders"},
        {"day": day, "resource": RULE, "cost": 0.75, "quantity": 750_000, "team": "orders"},
        {"day": day, "resource": None, "cost": 0.5, "quantity": 500_000},
        {"day": day, "service": "Amazon Simple Queue Service", "usage_type": "Requests-Tier1",
         "resource": QUEUE, "cost": 0.4, "quantity": 1_000_000, "team": "orders"},
    ])
    lines = export_rows(table, "focus-1.0", "Team", *_window(day, day))
    assert list(lines.columns) == LINE_COLUMNS
    by_resource = {(r.resource_id, r.team_tag): (r.amount, r.usage_quantity)
                   for r in lines.itertuples()}
    assert by_resource == {(RULE, "orders"): (2.0, 2_000_000), ("", ""): (0.5, 500_000),
                           (QUEUE, "orders"): (0.4, 1_000_000)}
    daily = daily_rows(lines, datetime(2026, 11, 26, 9, tzinfo=UTC), estimated_from=day)
    COST_DAILY.to_table(daily)
    assert sorted(daily["amount"]) == [0.4, 0.5, 2.0] and daily["estimated"].all()
    resources = resource_rows(lines, datetime(2026, 11, 26, 9, tzinfo=UTC))
    COST_RESOURCES.to_table(resources)
    assert sorted(resources["resource_id"]) == [RULE, QUEUE]


def test_cur2_lines_read_hourly_starts_text_costs_and_user_tags() -> None:
    day = T0
    table = cur2([{"day": day, "cost": "0.000123", "resource": RULE, "team": "orders",
                   "quantity": 123.0},
                  {"day": day, "cost": "0.5", "resource": "", "quantity": None}])
    lines = export_rows(table, "cur-2.0", "Team", *_window(day, day))
    assert list(lines["date"]) == [day, day]
    named = lines[lines["resource_id"] == RULE].iloc[0]
    # the product code AWSEvents is Cost Explorer's "CloudWatch Events"
    assert named["team_tag"] == "orders" and named["service"] == "CloudWatch Events"
    assert math.isclose(named["amount"], 0.000123) and named["usage_quantity"] == 123.0
    plain = lines[lines["resource_id"] == ""].iloc[0]
    assert plain["team_tag"] == "" and pd.isna(plain["usage_quantity"])
    assert set(lines["currency"]) == {"USD"}  # no currency column: USD


@pytest.mark.parametrize(("first", "last"), [
    (date(2024, 2, 28), date(2024, 3, 1)),    # a leap day
    (date(2025, 12, 30), date(2026, 1, 2)),   # a year end
    (date(2026, 10, 31), date(2026, 11, 1)),  # a month start
])
def test_every_day_of_the_window_and_none_outside_it(first: date, last: date) -> None:
    days = [first + timedelta(days=i) for i in range(-1, (last - first).days + 2)]
    table = focus([{"day": d, "cost": 1.0} for d in days])
    lines = export_rows(table, "focus-1.0", "Team", *_window(first, last))
    assert list(lines["date"]) == days[1:-1]
    assert billing_periods(*_window(first, last)) == sorted(
        {d.strftime("%Y-%m") for d in days[1:-1]})


def test_absent_optional_columns_give_empty_text_and_null_quantity() -> None:
    table = focus([{"day": T0, "cost": 3.0, "team": "orders"}],
                  drop=("x_UsageType", "ResourceId", "ConsumedQuantity", "Tags",
                        "BillingCurrency"))
    (line,) = export_rows(table, "focus-1.0", "Team", *_window(T0, T0)).itertuples()
    assert (line.usage_type, line.resource_id, line.team_tag, line.currency) == \
        ("", "", "", "USD")
    assert pd.isna(line.usage_quantity) and line.amount == 3.0


def test_a_missing_required_column_makes_the_export_unreadable() -> None:
    table = focus([{"day": T0, "cost": 3.0}], drop=("BilledCost",))
    with pytest.raises(ExportUnreadable, match="BilledCost"):
        export_rows(table, "focus-1.0", "Team", *_window(T0, T0))


def test_bad_lines_are_logged_and_skipped_the_rest_kept(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    table = focus([{"day": T0, "cost": 1.0}, {"day": None, "cost": 2.0},
                   {"day": T0, "cost": float("nan")}, {"day": T0, "cost": 4.0, "account": ""}])
    with caplog.at_level(logging.WARNING, logger="collectors.cost_export"):
        lines = export_rows(table, "focus-1.0", "Team", *_window(T0, T0))
    assert list(lines["amount"]) == [1.0]
    assert "skipped 3 of 4 lines" in caplog.text


@pytest.mark.parametrize(("code", "name", "usage_type", "expected"), [
    ("AWSEvents", "Amazon EventBridge", "USE1-Event-64K-Chunks", "CloudWatch Events"),
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "BoxUsage:m5.xlarge",
     "Amazon Elastic Compute Cloud - Compute"),
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "EUW1-SpotUsage:c5.large",
     "Amazon Elastic Compute Cloud - Compute"),
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "NatGateway-Bytes", "EC2 - Other"),
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "USE1-EBS:VolumeUsage.gp3", "EC2 - Other"),
    ("AWSQueueService", "Amazon Simple Queue Service", "Requests-Tier1",
     "Amazon Simple Queue Service"),
    ("AmazonBedrock", "Amazon Bedrock", "USE1-x", "Amazon Bedrock"),  # unknown: kept
    ("", "Amazon Bedrock", "", "Amazon Bedrock"),  # no x_ServiceCode column
])
def test_services_get_cost_explorers_names(code: str, name: str, usage_type: str,
                                           expected: str) -> None:
    assert ce_service(code, name, usage_type) == expected


@pytest.mark.parametrize(("tags", "expected"), [
    ([("user:Team", "orders")], "orders"), ({"user_team": "orders"}, "orders"),
    ('{"user:Team": "orders"}', "orders"), ({"Team": "orders"}, "orders"),
    ("not json", ""), (None, ""), ([], ""), ({"user:Owner": "x"}, ""), (42, ""),
])
def test_tag_value_reads_each_shape_of_tag_map(tags: Any, expected: str) -> None:
    keys = ("user:Team", "user_Team", "user_team", "Team")
    assert tag_value(tags, keys) == expected


# --- where the export is ---------------------------------------------------------------------


def test_export_uri_and_layout() -> None:
    assert parse_uri(URI) == ("payer-exports", "data-exports/focus")
    assert period_prefix("data-exports/focus", "2024-02") == \
        "data-exports/focus/data/BILLING_PERIOD=2024-02/"
    for bad in ("payer-exports/focus", "https://x/y", "s3:///focus"):
        with pytest.raises(ValueError, match="export_uri"):
            parse_uri(bad)


def test_data_export_without_an_s3_uri_is_a_start_up_error() -> None:
    with pytest.raises(ValidationError, match="export_uri"):
        CostCollectorConfig(source="data_export")
    with pytest.raises(ValidationError, match="s3://"):
        CostCollectorConfig(source="data_export", export_uri="/data/focus")
    settings = CostCollectorConfig(source="data_export", export_uri=URI,
                                   export_format="cur-2.0")
    assert settings.export_format == "cur-2.0"
    with pytest.raises(ValidationError):
        CostCollectorConfig(source="data_export", export_uri=URI, export_format="cur-1")


class FakeS3:
    """ListObjectsV2 and GetObject over a dict of key -> bytes; ``error``: every call fails."""

    def __init__(self, objects: dict[str, bytes], error: str | None = None) -> None:
        self.objects = objects
        self.error = error
        self.calls: list[str] = []

    def _fail(self, operation: str) -> None:
        self.calls.append(operation)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, operation)

    def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self._fail("ListObjectsV2")
        keys = [k for k in sorted(self.objects) if k.startswith(params["Prefix"])]
        return {"Contents": [{"Key": k} for k in keys], "IsTruncated": False}

    def get_object(self, **params: Any) -> dict[str, Any]:
        self._fail("GetObject")
        return {"Body": io.BytesIO(self.objects[params["Key"]])}


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _key(period: str) -> str:
    return f"{period_prefix('data-exports/focus', period)}focus-00001.snappy.parquet"


def test_read_export_reads_each_period_and_refuses_a_missing_open_one(
        caplog: pytest.LogCaptureFixture) -> None:
    table = focus([{"day": T0, "cost": 1.0}])
    s3 = FakeS3({_key("2026-11"): _parquet(table),
                 _key("2026-11").replace(".parquet", ".json"): b"{}"})
    with caplog.at_level(logging.INFO, logger="collectors.cost_export"):
        read = read_export(s3, URI, "focus-1.0", ["2026-10", "2026-11"], {"2026-11"})
    assert read.num_rows == 1 and "no file for billing period 2026-10" in caplog.text
    assert s3.calls == ["ListObjectsV2", "ListObjectsV2", "GetObject"]
    with pytest.raises(ExportUnreadable, match="open billing period 2026-10"):
        read_export(s3, URI, "focus-1.0", ["2026-10", "2026-11"], {"2026-10", "2026-11"})
    s3.objects[_key("2026-11")] = b"not parquet"
    with pytest.raises(ExportUnreadable, match="not a readable Parquet"):
        read_export(s3, URI, "focus-1.0", ["2026-11"], {"2026-11"})
    with pytest.raises(ExportUnreadable, match="AccessDenied"):
        read_export(FakeS3({}, "AccessDenied"), URI, "focus-1.0", ["2026-11"], {"2026-11"})


# --- the collector ---------------------------------------------------------------------------


class Clients:
    """ctx.client: a fake S3 and a Cost Explorer that answers every request with one day."""

    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3
        self.ce_calls: list[dict[str, Any]] = []

    def __call__(self, service: str) -> Any:
        return self.s3 if service == "s3" else self

    def get_cost_and_usage(self, **params: Any) -> dict[str, Any]:
        self.ce_calls.append(params)
        keys = [ACCOUNT, "Team$orders"] if params["GroupBy"][0]["Key"] == "LINKED_ACCOUNT" \
            else ["CloudWatch Events", "USE1-Event-64K-Chunks"]
        return {"ResultsByTime": [{
            "TimePeriod": {"Start": T0.isoformat(), "End": (T0 + timedelta(days=1)).isoformat()},
            "Groups": [{"Keys": keys, "Metrics": {"UnblendedCost": {"Amount": "2",
                                                                    "Unit": "USD"}}}]}]}


def _context(clients: Clients) -> CollectContext:
    now = datetime(T0.year, T0.month, T0.day, 9, tzinfo=UTC)
    settings = CostCollectorConfig(source="data_export", export_uri=URI)
    return CollectContext(
        account=Account("101010101010", "org-management", "platform"), region="us-east-1",
        window=Window(now, now), collected_at=now, client_factory=clients, settings=settings,
        watermark=datetime(T0.year, T0.month, 1, tzinfo=UTC))


def test_collector_reads_the_export_and_writes_resource_lines() -> None:
    table = focus([{"day": T0, "cost": 1.5, "resource": RULE, "team": "orders"},
                   {"day": T0, "cost": 0.5, "team": "orders"}])
    clients = Clients(FakeS3({_key(f"{T0:%Y-%m}"): _parquet(table)}))
    result = collect_cost(_context(clients))
    assert clients.ce_calls == []
    daily, resources = result.frames[COST_DAILY.name], result.frames[COST_RESOURCES.name]
    assert list(daily["amount"]) == [2.0] and list(resources["resource_id"]) == [RULE]


@pytest.mark.parametrize("s3", [FakeS3({}, "AccessDenied"), FakeS3({})],
                         ids=["access denied", "no file for the open month"])
def test_collector_falls_back_to_cost_explorer_when_the_export_cannot_be_read(
        s3: FakeS3, caplog: pytest.LogCaptureFixture) -> None:
    clients = Clients(s3)
    with caplog.at_level(logging.WARNING, logger="collectors.cost"):
        result = collect_cost(_context(clients))
    assert "reading Cost Explorer for this run instead" in caplog.text
    assert len(clients.ce_calls) == 2  # pairs, then the one pair's detail
    assert list(result.frames[COST_DAILY.name]["amount"]) == [2.0]
    assert COST_RESOURCES.name not in result.frames
    assert s3.calls[0] == "ListObjectsV2"


def test_probes_read_the_exports_folder_only_when_the_export_is_configured() -> None:
    s3 = FakeS3({"data-exports/focus/orgscope-access-probe": b""})
    ctx = _context(Clients(s3))
    assert probe_export_list(ctx)["Contents"] == [  # type: ignore[index]
        {"Key": "data-exports/focus/orgscope-access-probe"}]
    probe_export_get(ctx)
    assert s3.calls == ["ListObjectsV2", "GetObject"]
    explorer = CollectContext(
        account=ctx.account, region=ctx.region, window=ctx.window,
        collected_at=ctx.collected_at, client_factory=Clients(s3), settings=CostCollectorConfig())
    assert probe_export_list(explorer) is None and probe_export_get(explorer) is None
    assert s3.calls == ["ListObjectsV2", "GetObject"]  # no call while Cost Explorer is read
