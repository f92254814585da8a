"""How long the traces step and the views take as traced traffic grows.

Builds a store with the simulator's order flows (sim/tracing.py: five accounts, one flow in
four broken at the bus, inventory-mgmt as OpenTelemetry spans) at FLOWS flows a minute for
the step's whole read range (``[traces] window`` + ``max_duration``, 20 minutes by default),
written as the runner writes them: one ``spans`` file per collection cycle (a minute). Then
times ``update_traces`` (read, stitch, summarize, compare, write) on an empty ``traces``
dataset ("first": every trace written) and again with nothing new ("again": nothing written),
and the views the Traces page calls over the stitched spans (``service_map``,
``latency_percentiles`` at 1 minute).

    .venv/bin/python bench/bench_traces.py [--flows 25 100 400] [--repeat 3]

Results: bench/results/traces.md (appended by hand from the printed table).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pandas as pd

from collectors.xray import segment_rows
from orgscope.config import Config
from orgscope.datasets import SPANS, TRACES, all_datasets
from orgscope.plugins import parse_config
from orgscope.store import Store
from orgscope.traces.otlp import log_event_row
from orgscope.traces.update import TracesUpdate, update_traces
from orgscope.traces.views import latency_percentiles, service_map
from sim.tracing import (
    BREAK_EVERY,
    OTEL_SERVICES,
    FlowSegments,
    TraceFaults,
    flow_segments,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 18, 30, tzinfo=UTC)
ACCOUNTS = {"customer-web": "111111111111", "central-bus": "121212121212",
            "order-processing": "777777777777", "payment-service": "999999999999",
            "inventory-mgmt": "666666666666"}


def minute_spans(minute: datetime, flows: int) -> pd.DataFrame:
    out = FlowSegments()
    for index in range(flows):
        start = minute + timedelta(seconds=50.0 * index / flows)
        flow_segments(start, index, 7, accounts=ACCOUNTS, faults=TraceFaults(),
                      delivered=True, out=out, broken=index % BREAK_EVERY == 0,
                      otel=OTEL_SERVICES)
    rows = [row for account, docs in out.documents.items() for doc in docs
            for row in segment_rows(doc, account_id=account, region="us-east-1")]
    rows += [log_event_row(event["message"], account_id=account, region="us-east-1")
             for account, events in out.spans.items() for event in events]
    frame = pd.DataFrame(rows, columns=SPANS.columns)
    frame["http_status"] = frame["http_status"].astype("Int64")
    return frame


def build(store: Store, config: Config, flows: int) -> int:
    minutes = int((config.traces.window + config.traces.max_duration).total_seconds() // 60)
    total = 0
    for step in range(minutes, 0, -1):
        minute = NOW - timedelta(minutes=step)
        frame = minute_spans(minute, flows)
        store.write(SPANS.name, frame, f"{minute:%Y%m%dT%H%M%SZ}-bench")
        total += len(frame)
    return total


def first_run(config: Config, store: Store) -> TracesUpdate:
    """update_traces on an empty ``traces`` dataset (the earlier run's files removed)."""
    shutil.rmtree(store.root / TRACES.name, ignore_errors=True)
    return update_traces(config, store, now=NOW)


def timed(call: object, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        clock = time.perf_counter()
        result = call()  # type: ignore[operator]
        times.append(time.perf_counter() - clock)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = tomllib.loads((ROOT / "config.toml").read_text())
    print("| flows/min | spans read | traces | update_traces first | update_traces again | "
          "service_map | latency_percentiles |")
    print("|---|---|---|---|---|---|---|")
    for flows in args.flows:
        with tempfile.TemporaryDirectory() as folder:
            data["store"] = {"path": folder}
            config = parse_config(data, str(ROOT / "config.toml"))
            store = Store(folder, all_datasets())
            spans = build(store, config, flows)
            step_s, update = timed(partial(first_run, config, store), args.repeat)
            again_s, _ = timed(partial(update_traces, config, store, now=NOW), args.repeat)
            stitched = update.stitched  # type: ignore[attr-defined]
            map_s, _ = timed(partial(service_map, stitched), args.repeat)
            latency_s, _ = timed(partial(latency_percentiles, stitched, "1min"), args.repeat)
            print(f"| {flows} | {spans:,} | {update.traces:,} | "  # type: ignore[attr-defined]
                  f"{step_s:.2f} s | {again_s:.2f} s | {map_s:.2f} s | {latency_s:.2f} s |",
                  flush=True)


if __name__ == "__main__":
    main()
