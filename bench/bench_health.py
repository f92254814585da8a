"""How long the health model takes over 30 days of the reference organization's metrics.

Builds a synthetic store: 13 accounts, 26 rules (13 on the central bus, 13 forwarded ones in
the consumer accounts), every rule metric at 5-minute periods for 30 days (counts zero-filled)
plus each producer's PutEvents metrics, written as the runner writes them: one file per
collection cycle, or with --compacted as `orgscope compact` leaves them (one file per past day,
one per cycle today). Then times read_inputs, evaluate and update_rule_health.

    .venv/bin/python bench/bench_health.py [--compacted] [--days 30] [--repeat 5]

Results: bench/results/health.md (appended by hand from the printed summary).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # testkit is not installed: run as `python bench/x.py`

from orgscope.config import Config  # noqa: E402
from orgscope.datasets import DLQ_DEPTH, EVENT_METRICS, all_datasets  # noqa: E402
from orgscope.health.model import evaluate  # noqa: E402
from orgscope.health.update import read_inputs, update_rule_health  # noqa: E402
from orgscope.plugins import parse_config  # noqa: E402
from orgscope.store import Store  # noqa: E402
from testkit import synthetic as sy  # noqa: E402

NOW = datetime(2026, 11, 24, 14, 7, tzinfo=UTC)
PERIOD = timedelta(minutes=5)


def build(store: Store, config: Config, days: int, compacted: bool) -> int:
    names = {a.id: a.name for a in config.accounts}
    central = config.organization.central_bus_account_id
    consumers = [a for a in names if a != central][:13]
    rules = [sy.SynthRule(central, f"route-{i}", bus="central-bus",
                          sources=(f"quickgrocer.{names[consumers[i % len(consumers)]]}",),
                          dlq_arns=(f"arn:aws:sqs:us-east-1:{central}:route-{i}-dlq",))
             for i in range(13)]
    rules += [sy.SynthRule(consumers[i % len(consumers)], f"deliver-{i}",
                           sources=(f"quickgrocer.{names[consumers[i % len(consumers)]]}",),
                           dlq_arns=(f"arn:aws:sqs:us-east-1:{consumers[i % len(consumers)]}"
                                     f":deliver-{i}-dlq",))
              for i in range(13)]
    scenario = sy.Scenario(rules, NOW - timedelta(days=days), NOW, PERIOD,
                           producers={a: "us-east-1" for a in names})
    metrics = scenario.metrics()
    today = pd.Timestamp(NOW).floor("D")
    day = metrics["ts"].dt.floor("D")
    file_key = day.where(day < today, metrics["ts"]) if compacted else metrics["ts"]
    for key, frame in metrics.groupby(file_key):
        stamp = pd.Timestamp(str(key))
        store.write(EVENT_METRICS.name, frame, f"c-{stamp:%Y%m%dT%H%M%SZ}")
    cycles = sy.periods(NOW - timedelta(days=days), NOW, PERIOD)
    pairs = [(a, "us-east-1") for a in names]
    store.write("runs", pd.concat([sy.runs(pairs, t.to_pydatetime()) for t in cycles[-2016:]]),
                "runs")
    store.write("accounts", sy.accounts(names, NOW), "accounts")
    store.write("rules", sy.inventory(rules, NOW), "inv")
    store.write("runs", sy.runs(pairs, NOW, collector="inventory"), "inv-runs")
    store.write("event_buses", sy.buses([(NOW, central, "us-east-1", "central-bus",
                                          sorted(names))]), "inv")
    dlq = sy.dlq_readings([(t.to_pydatetime(), arn, 0) for t in cycles[-12:]
                           for r in rules for arn in r.dlq_arns])
    store.write(DLQ_DEPTH.name, dlq, "dlq")
    return len(metrics)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compacted", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = tomllib.loads((ROOT / "config.toml").read_text())
        data["store"] = {"path": folder}
        config = parse_config(data, str(Path(folder) / "config.toml"))
        store = Store(folder, all_datasets())
        clock = time.monotonic()
        rows = build(store, config, args.days, args.compacted)
        files = len(store.files(EVENT_METRICS.name))
        print(f"built {rows:,} event_metrics rows in {files:,} files "
              f"in {time.monotonic() - clock:.1f}s")
        totals, reads, evals = [], [], []
        for _ in range(args.repeat):
            clock = time.monotonic()
            inputs = read_inputs(store, NOW, config.health, PERIOD)
            reads.append(time.monotonic() - clock)
            clock = time.monotonic()
            evaluate(inputs.rules, inputs.metrics, inputs.dlq, inputs.accounts, inputs.runs,
                     inputs.buses, NOW, config.health, PERIOD)
            evals.append(time.monotonic() - clock)
            clock = time.monotonic()
            result = update_rule_health(config, store, NOW)
            totals.append(time.monotonic() - clock)
        print(f"rows read {len(inputs.metrics):,}; verdicts "
              f"{result['verdict'].value_counts().to_dict()}")
        print(f"read    median {statistics.median(reads):.3f}s  (min {min(reads):.3f})")
        print(f"evaluate median {statistics.median(evals):.3f}s  (min {min(evals):.3f})")
        print(f"update_rule_health median {statistics.median(totals):.3f}s  "
              f"(min {min(totals):.3f})")


if __name__ == "__main__":
    main()
