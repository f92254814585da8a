"""The reference organization's monthly API bill at the default intervals, from a real run.

Starts the simulated QuickGrocer organization (sim/, moto's server, one hour of history and
live traffic every ``--tick`` seconds), runs one full collection cycle (every collector, in
stages, the first runs back-filling as on a new install), then ``--cycles`` more at the
configured X-Ray interval apart, as ``orgscope serve`` would, and prices the stored runs with
:mod:`orgscope.bill`: per collector at the configured intervals, the total, and what other
intervals would cost. Nothing here is typed in: the numbers are the runs' own.

    nice -n 10 .venv/bin/python bench/bill_reference.py [--cycles 3] [--tick 20]
        [--cost-source data_export]

``--cost-source data_export`` has the cost collector read the simulator's FOCUS export from S3
(docs/cost.md, "Data exports") instead of Cost Explorer.

Results: bench/results/bill_reference.json and bench/results/bill_reference.md (the tables
docs/performance.md shows); bill_reference_data_export.* with ``--cost-source data_export``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orgscope import (  # noqa: E402
    bill,
    plugins,
    wiring,
)
from orgscope.config import Config, format_interval  # noqa: E402
from orgscope.runner import stages  # noqa: E402
from sim.data_export import export_uri  # noqa: E402
from sim.org import SimulatedOrg  # noqa: E402

log = logging.getLogger("bench.bill_reference")

RESULTS = ROOT / "bench" / "results"
WHAT_IF = ("1m", "5m", "15m", "1h", "8h", "1d")


def _markdown(by_collector: pd.DataFrame, curves: dict[str, dict[str, float]],
              total: float) -> str:
    lines = ["| collector | interval | accounts | API calls / month | CloudWatch $ | "
             "Cost Explorer $ | X-Ray $ | S3 $ | monthly $ |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in by_collector.to_dict("records"):
        lines.append(
            f"| {r['collector']} | {format_interval(timedelta(seconds=r['interval_s']))} | "
            f"{r['accounts']} | {r['api_calls_per_month']:,.0f} | {r['cloudwatch_usd']:,.2f} | "
            f"{r['cost_explorer_usd']:,.2f} | {r['xray_usd']:,.2f} | {r['s3_usd']:,.4f} | "
            f"**{r['monthly_usd']:,.2f}** |")
    lines.append(f"| **total** | | | | | | | | **{total:,.2f}** |")
    lines += ["", "What the same collector would cost a month at other intervals:", "",
              "| collector | " + " | ".join(WHAT_IF) + " |",
              "|---|" + "---:|" * len(WHAT_IF)]
    for collector, curve in curves.items():
        lines.append(f"| {collector} | " + " | ".join(f"{curve[i]:,.2f}" for i in WHAT_IF)
                     + " |")
    return "\n".join(lines) + "\n"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=3,
                        help="steady-state cycles after the first (default 3)")
    parser.add_argument("--tick", type=float, default=20.0,
                        help="seconds between the simulator's traffic ticks")
    parser.add_argument("--cost-source", choices=("cost_explorer", "data_export"),
                        default="cost_explorer",
                        help="where the cost collector reads the bill (default Cost Explorer)")
    parser.add_argument("--change-events", action="store_true",
                        help="deploy the change-event rules in every account, as a setup with "
                             "a change feed has (docs/changes.md)")
    return parser.parse_args()


def _config_text(folder: str, cost_source: str) -> str:
    text = (ROOT / "config.toml").read_text().replace(
        'path = "./data"', f'path = "{folder}/store"')
    if cost_source == "data_export":
        management = wiring.load(ROOT / "config.toml").organization.management_account_id
        text = text.replace('source = "cost_explorer"', 'source = "data_export"\n'
                            f'export_uri = "{export_uri(management)}"')
    return text


def _collect(config_path: Path, config: Config, args: argparse.Namespace
             ) -> tuple[pd.DataFrame, datetime]:
    """Run the simulator and the collectors as the module doc says; the runs' usage and the
    moment it was read at."""
    cycles, tick = args.cycles, args.tick
    sim = SimulatedOrg(config, history_hours=1, tick_s=tick, change_events=args.change_events)
    os.environ["AWS_ENDPOINT_URL"] = sim.start()
    sim.start_traffic()
    try:
        runner = wiring.runner(wiring.load(config_path))
        collectors = list(plugins.COLLECTORS.values())
        clock = time.monotonic()
        for stage in stages(collectors):
            runner.run_cycle(stage)
        log.info("first cycle (back-fills) in %.0f s", time.monotonic() - clock)
        spacing = config.collector("xray").interval.total_seconds()
        for index in range(cycles):
            started = time.monotonic()
            for stage in stages(collectors):
                runner.run_cycle(stage)
            log.info("cycle %d in %.0f s", index + 2, time.monotonic() - started)
            time.sleep(max(0.0, spacing - (time.monotonic() - started)))
        now = datetime.now(UTC)
        # the metrics collector's full tier runs once an hour: one run just past the next
        # hour prices it from a run of its own (moto answers for the future as for now)
        full_at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1,
                                                                            minutes=1)
        if config.collector("metrics").pricing().tiers:
            runner.run_cycle([plugins.collector("metrics")], now=full_at)
            now = full_at + timedelta(minutes=1)
        return bill.read_usage(runner.store, now), now
    finally:
        sim.stop()


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("botocore", "urllib3", "werkzeug", "moto", "orgscope", "collectors", "sim"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ[key] = value
    for key in ("ORGSCOPE_EXTERNAL_ID", "ORGSCOPE_STORE", "ORGSCOPE_CONFIG"):
        os.environ.pop(key, None)
    with tempfile.TemporaryDirectory(prefix="orgscope-bill-") as folder:
        config_path = Path(folder) / "config.toml"
        config_path.write_text(_config_text(folder, args.cost_source))
        config = wiring.load(config_path)
        usage, now = _collect(config_path, config, args)
    billed = bill.bill(usage, config)
    totals = bill.by_collector(billed)
    total = float(totals["monthly_usd"].sum())
    bases = dict.fromkeys(bill.base_names(totals["collector"]))
    curves = {c: {label: bill.collector_monthly(usage, config, c, wiring_interval(label))
                  for label in WHAT_IF} for c in bases}
    RESULTS.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"), "cycles": 1 + args.cycles,
        "sim_tick_s": args.tick, "cost_source": args.cost_source,
        "change_events": args.change_events,
        "total_monthly_usd": round(total, 4),
        "by_collector": totals.to_dict("records"), "what_if": curves,
        "usage": usage.assign(last_started_at=usage["last_started_at"].astype(str))
        .to_dict("records"),
    }
    name = "bill_reference" if args.cost_source == "cost_explorer" else \
        "bill_reference_data_export"
    name += "_change_events" if args.change_events else ""
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    text = _markdown(totals, curves, total)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def wiring_interval(label: str) -> timedelta:
    from orgscope.config import parse_interval
    return parse_interval(label)


if __name__ == "__main__":
    main()
