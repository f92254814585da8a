"""The traces step: stitched summaries of the recent window, idempotent across runs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from orgscope import wiring
from orgscope.config import Config
from orgscope.datasets import SPANS, TRACES
from orgscope.plugins import triggered
from orgscope.store import Store
from orgscope.traces import update as update_module
from orgscope.traces.update import read_traces, update_traces, window_start
from orgscope.traces.views import SUMMARY_COLUMNS
from tests.traces.test_stitch import CONSUMER, PRODUCER, T0, sid, span

WEB, BUS, ORDERS = "111111111111", "121212121212", "777777777777"


def producer_spans() -> pd.DataFrame:
    rows = [span(PRODUCER, sid(1), None, ms=0, account="1", service="customer-web",
                 end_ms=100),
            span(PRODUCER, sid(2), sid(1), ms=5, account="1", service="customer-web",
                 end_ms=20)]
    frame = pd.DataFrame(rows, columns=SPANS.columns)
    frame["account_id"] = WEB
    return frame


def consumer_spans() -> pd.DataFrame:
    rows = [span(CONSUMER, sid(5), None, ms=200, service="order-processing", end_ms=50,
                 annotations={"traceparent": f"00-{PRODUCER}-{sid(2)}-01",
                              "event_rule": "r"})]
    frame = pd.DataFrame(rows, columns=SPANS.columns)
    frame["account_id"] = ORDERS
    return frame


def test_the_step_runs_after_the_span_collectors_and_health() -> None:
    for collector in ("xray", "otel", "otlp_files"):
        assert "traces" in [s.name for s in triggered([collector])]
    assert "traces" not in [s.name for s in triggered(["cost"])]
    names = [s.name for s in triggered(["otel", "metrics"])]
    assert names.index("health") < names.index("traces")


def test_restitching_overlapping_windows_keeps_one_row_per_trace(config: Config) -> None:
    store: Store = wiring.open_store(config)
    store.write(SPANS.name, producer_spans(), "c1")
    store.write(SPANS.name, consumer_spans(), "c1")
    first = update_traces(config, store, now=T0 + timedelta(minutes=1))
    second = update_traces(config, store, now=T0 + timedelta(minutes=2))
    assert first.traces == second.traces == 1
    assert len(first.written) == 2 and second.written.empty  # nothing changed: no file
    assert len(store.files("traces")) == 1
    stored = store.query("SELECT * FROM traces ORDER BY trace_id")
    # one summary, and one row saying the consumer's collected trace joined it
    assert stored[["trace_id", "merged_into"]].fillna("-").values.tolist() == \
        [[PRODUCER, "-"], [CONSUMER, PRODUCER]]
    row = stored.iloc[0]
    assert row["trace_id"] == PRODUCER
    assert list(row["member_trace_ids"]) == [PRODUCER, CONSUMER]
    assert list(row["teams"]) == ["customer-web", "orders"]
    assert pd.isna(row["merged_into"])
    assert "1 joined across a broken trace id" in second.summary()


def test_a_consumer_stored_alone_is_replaced_when_its_producer_arrives(
        config: Config) -> None:
    store = wiring.open_store(config)
    store.write(SPANS.name, consumer_spans(), "c1")
    alone = update_traces(config, store, now=T0 + timedelta(minutes=1))
    assert list(alone.written["trace_id"]) == [CONSUMER]
    assert alone.written.loc[0, "breaks"] == 1  # producer-missing, for now
    store.write(SPANS.name, producer_spans(), "c2")  # the producer's account read later
    update_traces(config, store, now=T0 + timedelta(minutes=2))
    stored = store.query("SELECT trace_id, merged_into FROM traces ORDER BY trace_id")
    assert stored.fillna("-").values.tolist() == [[PRODUCER, "-"], [CONSUMER, PRODUCER]]
    current = read_traces(store, T0 - timedelta(hours=1))
    assert list(current.columns) == SUMMARY_COLUMNS
    assert list(current["trace_id"]) == [PRODUCER]
    assert current.loc[0, "breaks"] == 0


def test_only_traces_that_started_in_the_window_are_written(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wiring.open_store(config)
    store.write(SPANS.name, producer_spans(), "c1")
    store.write(SPANS.name, consumer_spans(), "c1")
    late = T0 + config.traces.window + timedelta(seconds=1)
    # the step ran just now, so this run's window is the configured one
    monkeypatch.setattr(update_module, "last_stitched", lambda _store: late)
    update = update_traces(config, store, now=late)
    # the producer started before the window: neither it nor its joined consumer is
    # written again (an earlier run wrote them whole), and the consumer is not split off
    assert update.written.empty and len(update.stitched) == 3
    assert store.query("SELECT count(*) AS n FROM traces")["n"][0] == 0


def test_a_first_run_stitches_what_the_back_fill_collected(config: Config) -> None:
    # the span collectors' first run back-fills an hour; the step's first run must turn all
    # of it into traces, not only the last window
    store = wiring.open_store(config)
    store.write(SPANS.name, producer_spans(), "c1")
    store.write(SPANS.name, consumer_spans(), "c1")
    update = update_traces(config, store, now=T0 + timedelta(minutes=40))
    assert update.traces == 1 and list(update.current["trace_id"]) == [PRODUCER]


MOMENT = T0 + timedelta(hours=2)
WINDOW, BACKFILL = timedelta(minutes=15), timedelta(hours=1)


@pytest.mark.parametrize(
    ("last_run", "expected"),
    [
        (None, MOMENT - BACKFILL),  # first run: everything the collectors back-filled
        (MOMENT - timedelta(minutes=1), MOMENT - timedelta(minutes=16)),  # the usual minute
        (MOMENT, MOMENT - WINDOW),
        (MOMENT - timedelta(minutes=30), MOMENT - timedelta(minutes=45)),  # after a pause
        (MOMENT - timedelta(hours=5), MOMENT - BACKFILL),  # never past the back-fill
    ],
)
def test_window_start_reaches_back_to_the_previous_run(
    last_run: datetime | None, expected: datetime
) -> None:
    assert window_start(MOMENT, WINDOW, BACKFILL, last_run) == expected


def test_nothing_to_stitch_writes_nothing(config: Config) -> None:
    store = wiring.open_store(config)
    update = update_traces(config, store, now=T0)
    assert update.written.empty and list(update.written.columns) == TRACES.columns
    assert update.summary().startswith("traces: 0 since")


def test_a_trace_that_changed_is_written_again(config: Config) -> None:
    store = wiring.open_store(config)
    store.write(SPANS.name, producer_spans(), "c1")
    update_traces(config, store, now=T0 + timedelta(minutes=1))
    late = producer_spans().iloc[[1]].assign(span_id=sid(9), fault=True)
    store.write(SPANS.name, late, "c2")  # a segment that arrived late, faulted
    again = update_traces(config, store, now=T0 + timedelta(minutes=2))
    assert list(again.written["trace_id"]) == [PRODUCER]
    row = read_traces(store, T0 - timedelta(hours=1)).iloc[0]
    assert (row["span_count"], row["status"]) == (3, "fault")


def test_a_long_trace_is_not_replaced_by_its_tail_once_its_root_leaves_the_read(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace longer than max_duration: once its root is older than the read, the later
    spans stitch into a fragment with the same trace id that started inside the window; it
    replaced the whole trace's row (later start, fewer spans, a missing-parent break)."""
    store = wiring.open_store(config)
    tail = producer_spans().iloc[[1]].assign(
        span_id=sid(7), parent_id=sid(1), start=T0 + timedelta(minutes=7),
        end=T0 + timedelta(minutes=7, seconds=1))
    store.write(SPANS.name, pd.concat([producer_spans(), tail], ignore_index=True), "c1")
    whole = update_traces(config, store, now=T0 + timedelta(minutes=8))
    assert list(whole.written["span_count"]) == [3]
    later = T0 + timedelta(minutes=22)  # the read starts at 12:02: the root is not read
    monkeypatch.setattr(update_module, "last_stitched", lambda _store: later)
    again = update_traces(config, store, now=later)
    assert len(again.stitched) == 1 and again.written.empty
    row = read_traces(store, T0 - timedelta(hours=1)).iloc[0]
    assert (row["span_count"], row["breaks"], row["start"]) == (3, 0, T0)


def test_a_late_consumer_is_not_split_off_its_producer_once_the_producer_leaves_the_read(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    store = wiring.open_store(config)
    late = consumer_spans().assign(start=T0 + timedelta(minutes=7),
                                   end=T0 + timedelta(minutes=7, seconds=1))
    store.write(SPANS.name, producer_spans(), "c1")
    store.write(SPANS.name, late, "c1")
    update_traces(config, store, now=T0 + timedelta(minutes=8))
    later = T0 + timedelta(minutes=22)
    monkeypatch.setattr(update_module, "last_stitched", lambda _store: later)
    again = update_traces(config, store, now=later)
    assert again.written.empty
    assert list(read_traces(store, T0 - timedelta(hours=1))["trace_id"]) == [PRODUCER]
    # nor is it exported again as a trace of its own (the producer's export carried it)
    assert again.traces == 0 and again.current_spans.empty
