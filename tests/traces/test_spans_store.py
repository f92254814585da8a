"""The spans dataset in the store: spans read again are counted once, and a time filter
reaches the Parquet scan instead of waiting for the whole day to be de-duplicated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from orgscope.datasets import SPANS, all_datasets
from orgscope.store import Store

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def span_row(minute: int, end_ms: float | None = None) -> dict[str, Any]:
    return {column: None for column in SPANS.columns} | {
        "trace_id": "1" * 32, "span_id": f"{minute:016x}", "account_id": "111111111111",
        "region": "us-east-1", "service": "customer-web", "name": "POST /orders",
        "start": T0 + timedelta(minutes=minute), "duration_ms": end_ms, "fault": False,
        "error": False, "throttle": False, "source": "xray"}


def store_with_a_span_read_twice(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"), all_datasets())
    store.write("spans", pd.DataFrame([span_row(1), span_row(2)]), "20261125T120300Z-a")
    # the next cycle's overlap reads span 2 again, now finished
    store.write("spans", pd.DataFrame([span_row(2, 40.0), span_row(3)]), "20261125T120400Z-b")
    return store


def test_a_span_read_again_counts_once_with_its_newest_copy(tmp_path: Path) -> None:
    store = store_with_a_span_read_twice(tmp_path)
    rows = store.query("SELECT span_id, duration_ms FROM spans ORDER BY span_id")
    assert rows["span_id"].tolist() == [f"{m:016x}" for m in (1, 2, 3)]
    assert rows["duration_ms"].isna().tolist() == [True, False, True]


def test_a_filter_on_start_reaches_the_parquet_scan(tmp_path: Path) -> None:
    store = store_with_a_span_read_twice(tmp_path)
    plan = store.query("EXPLAIN SELECT count(*) FROM spans WHERE start >= ?",
                       [T0 + timedelta(minutes=2)]).iloc[0, 1]
    text = str(plan)
    # the plan prints top-down: what follows the Parquet read is the scan's own box
    scan = text[text.index("READ_PARQUET"):]
    assert "start >=" in scan, plan
