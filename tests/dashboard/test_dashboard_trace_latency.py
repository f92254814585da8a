"""Latency percentiles of the Traces page (dashboard.trace_latency, by the owner's query in
orgscope.traces.views)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from dashboard import trace_criteria as criteria
from dashboard import trace_latency as lat
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.traces_sample import FLOW_ACCOUNTS, SLOW_SERVICE, sample_window

PAYMENTS = FLOW_ACCOUNTS["payment-service"]
ORDERS = FLOW_ACCOUNTS["order-processing"]


def test_latency_percentiles_per_service_in_buckets(traced: tuple[Store, pd.DataFrame],
                                                    now: datetime) -> None:
    store, _ = traced
    frame = lat.latency(store, Filters(regions=("us-east-1",)), sample_window(now))
    assert set(frame["service"]) == set(FLOW_ACCOUNTS)
    assert frame["bucket_start"].diff().dropna().min() >= timedelta(minutes=5) or \
        frame["bucket_start"].nunique() > 1
    latest = frame[frame["bucket_start"] == frame["bucket_start"].max()].set_index("service")
    assert latest.loc[SLOW_SERVICE, "p99_ms"] > 700
    assert lat.latency(store, Filters(teams=("mobile",)), sample_window(now)).empty
    assert lat.latency_freq(timedelta(hours=1)) == "5min"
    assert lat.latency_freq(timedelta(days=7)) == "180min"


def test_latency_in_duckdb_equals_the_view_over_every_span_of_the_window(
        traced: tuple[Store, pd.DataFrame], now: datetime) -> None:
    from orgscope.traces import views

    store, _ = traced
    window = sample_window(now)
    spans = store.query("SELECT * EXCLUDE (date) FROM spans WHERE start >= ? AND start < ?",
                        [window.since, window.until])
    expected = views.latency_percentiles(spans, lat.latency_freq(window.length))
    got = lat.latency(store, Filters(), window)
    assert list(got.columns) == views.LATENCY_COLUMNS
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=2e-3,
                                  check_dtype=False)


def test_latency_covers_the_whole_range_however_many_spans(empty_store: Store,
                                                           now: datetime) -> None:
    """It read the 200,000 most recent spans and computed in pandas: on a busy organization
    (minutes of spans) a 24-hour chart held only its last minutes. Every span now counts."""
    import numpy as np

    from orgscope.datasets import SPANS

    count = 205_000
    window = criteria.Window.last("24h", now)
    starts = (window.since + pd.to_timedelta(np.linspace(0, 86_000, count), unit="s")
              ).floor("ms")
    ids = [f"{i:032x}" for i in range(1, count + 1)]
    frame = pd.DataFrame({
        "trace_id": ids, "span_id": [i[16:] for i in ids], "parent_id": None,
        "account_id": PAYMENTS, "region": "us-east-1", "service": "payment-service",
        "name": "charge", "origin": None, "start": starts, "end": None,
        "duration_ms": np.arange(count) % 100 + 1.0, "fault": False, "error": False,
        "throttle": False, "http_method": None, "http_url": None, "http_status": None,
        "annotations": None, "traceparent": None, "source": "xray", "linked_from": None,
    }, columns=SPANS.columns)
    frame["http_status"] = frame["http_status"].astype("Int64")
    empty_store.write("spans", frame, "busy")
    got = lat.latency(empty_store, Filters(), window)
    assert int(got["count"].sum()) == count
    assert got["bucket_start"].min() <= pd.Timestamp(window.since) + timedelta(minutes=30)
