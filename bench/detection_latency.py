"""Minutes from each failure mode of the simulator to its verdict, every run full against tiers.

The QuickGrocer simulator starts in this process (one hour of history), once per mode:

* ``every run full``: ``[collectors.metrics] full_interval = "5m"``, every metrics run reads
  every series of every rule (orgscope before tiers);
* ``tiers``: the default, ``full_interval = "1h"``: runs between read each rule's
  MatchedEvents, the failure signals across all rules and drill down (docs/performance.md,
  "Tiered metrics").

In each, orgscope collects once at the simulator's start (the back-fill), then every fault is
injected at once, each on a rule of its own account (a disabled rule, a broken pattern, a
removed bus permission, a failing target, throttling, a latency rise, an unreachable account),
and orgscope collects (inventory, metrics, dlq) and judges (the health model) every 5 minutes
of simulated time, as ``orgscope serve`` does, for ``--cycles`` cycles. Measured per fault:
the first cycle whose verdict of the faulted rule is the expected one (the faults go in at a
cycle whose next one reads the fast tier, so cycle 1 is 5 minutes after them and reads the
fast tier with tiers on), and the tier each cycle's
metrics runs read; per mode, the GetMetricData metrics
requested over the cycles after the back-fill.

    nice -n 10 .venv/bin/python bench/detection_latency.py [--cycles 8]

Results: bench/results/detection_latency.json (``--out``) and a Markdown table on stdout;
docs/performance.md carries it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.metrics import floor_to_period  # noqa: E402
from orgscope import plugins, wiring  # noqa: E402
from orgscope.health.update import update_rule_health  # noqa: E402
from orgscope.runner import Runner  # noqa: E402
from sim.org import SimulatedOrg  # noqa: E402
from sim.scenario import ScenarioEvent  # noqa: E402

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}
MODES = {"every run full": "5m", "tiers": "1h"}
PERIOD = timedelta(minutes=5)
Key = tuple[str, str, str]
CENTRAL = "121212121212"
#: Each fault on a rule of its own account (tests/integration/test_health_against_sim.py
#: checks that these do not touch each other's rules): fault, rule, expected verdict.
FAULTS: list[tuple[ScenarioEvent | None, Key, str]] = [
    (ScenarioEvent(0, timedelta(0), "disable_rule", {
        "account": "666666666666", "bus": "default", "rule": "order-placed-to-inventory"}),
     ("666666666666", "default", "order-placed-to-inventory"), "DISABLED"),
    (ScenarioEvent(0, timedelta(0), "break_pattern", {
        "account": "888888888888", "bus": "default", "rule": "order-events-to-delivery"}),
     ("888888888888", "default", "order-events-to-delivery"), "SILENT"),
    (ScenarioEvent(0, timedelta(0), "remove_bus_permission", {
        "account": CENTRAL, "bus": "central-bus", "principal": "999999999999"}),
     (CENTRAL, "central-bus", "payment-events-to-order-processing"), "SILENT"),
    (ScenarioEvent(0, timedelta(0), "target_errors", {
        "account": "777777777777", "bus": "default", "rule": "order-placed-to-order-processing",
        "rate": 0.5, "duration": "1h"}),
     ("777777777777", "default", "order-placed-to-order-processing"), "FAILING"),
    (ScenarioEvent(0, timedelta(0), "throttle", {
        "account": "555555555555", "bus": "default", "rule": "large-orders-to-merchant",
        "rate": 0.5, "duration": "1h"}),
     ("555555555555", "default", "large-orders-to-merchant"), "DEGRADED"),
    # a forwarding rule of the central bus: its latency is averaged with a dozen others' in
    # the account's series across all rules
    (ScenarioEvent(0, timedelta(0), "latency", {
        "account": CENTRAL, "bus": "central-bus", "rule": "order-placed-to-inventory",
        "ms": 4000, "duration": "1h"}),
     (CENTRAL, "central-bus", "order-placed-to-inventory"), "DEGRADED"),
    (None, ("444444444444", "default", "out-for-delivery-to-driver"), "STALE"),
]


def run_mode(name: str, full_interval: str, cycles: int, folder: Path) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config.toml").read_text())
    data["store"] = {"path": str(folder / name.replace(" ", "-"))}
    data["collectors"]["metrics"]["backfill"] = "1h"
    data["collectors"]["metrics"]["full_interval"] = full_interval
    config = plugins.parse_config(data, str(ROOT / "config.toml"))
    sim = SimulatedOrg(config, history_hours=1, tick_s=3600)
    endpoint = sim.start()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        config = config.model_copy(update={
            "aws": config.aws.model_copy(update={"endpoint_url": endpoint})})
        runner = Runner(config, wiring.session_factory(config), wiring.open_store(config))
        inventory = [plugins.collector("inventory")]
        readers = [plugins.collector("metrics"), plugins.collector("dlq")]
        started = sim.started_at
        assert started is not None

        def collect(now: datetime) -> list[Any]:
            return [*runner.run_cycle(inventory, now=now).runs,
                    *runner.run_cycle(readers, now=now).runs]

        collect(started)
        base = floor_to_period(started, int(PERIOD.total_seconds()))
        # the faults go in just after a cycle whose successor reads the fast tier (a run
        # past an hour boundary reads every series, which would not test the tiers)
        while floor_to_period(base + PERIOD, 3600) > floor_to_period(base, 3600) or \
                base + PERIOD - started < timedelta(minutes=2):
            base += PERIOD
            sim.tick(base)
            collect(base)
        faulted_at = base
        faults = FAULTS
        for event, _, _ in faults:
            if event is not None:
                sim.apply(event, faulted_at)
        sim.break_account("444444444444", "missing-role")
        found: dict[Key, int | None] = {key: None for _, key, _ in faults}
        tiers: list[dict[str, int]] = []
        metrics_requested = 0
        for cycle in range(1, cycles + 1):
            now = base + cycle * PERIOD
            sim.tick(now)
            runs = collect(now)
            metrics_runs = [r for r in runs if r.collector == "metrics"]
            tiers.append(dict(Counter(str(r.tier) for r in metrics_runs)))
            metrics_requested += sum(r.calls.metrics_requested for r in metrics_runs)
            verdicts = update_rule_health(config, runner.store, now=now)
            by_key = {(str(r.account_id), str(r.bus), str(r.rule)): str(r.verdict)
                      for r in verdicts.itertuples(index=False)}
            for _, key, verdict in faults:
                if found[key] is None and by_key.get(key) == verdict:
                    found[key] = cycle
            print(f"[{name}] cycle {cycle} at +{int((now - faulted_at).total_seconds() // 60)} "
                  f"min: tiers {tiers[-1]}", file=sys.stderr, flush=True)
        return {"full_interval": full_interval,
                "faults_at": faulted_at.isoformat(),
                "first_cycle_at": (base + PERIOD).isoformat(),
                "detected_in_cycle": {f"{verdict} {'/'.join(key)}": found[key]
                                      for _, key, verdict in faults},
                "tiers_per_cycle": tiers, "metrics_requested_after_backfill": metrics_requested}
    finally:
        sim.stop()


def markdown(results: dict[str, Any]) -> str:
    modes = list(results["modes"])
    lines = ["| fault: verdict of the rule | " + " | ".join(modes) + " |",
             "|---|" + "---:|" * len(modes)]
    keys = list(results["modes"][modes[0]]["detected_in_cycle"])
    for key in keys:
        cells = []
        for mode in modes:
            value = results["modes"][mode]["detected_in_cycle"].get(key)
            cells.append("not detected" if value is None else
                         f"cycle {value} (+{value * 5} min)")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| GetMetricData metrics requested, cycles after the back-fill | " + " | ".join(
        f"{results['modes'][m]['metrics_requested_after_backfill']:,}" for m in modes) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "detection_latency.json")
    args = parser.parse_args()
    os.environ.update(ENV)
    os.environ.pop("ORGSCOPE_EXTERNAL_ID", None)
    results: dict[str, Any] = {"bench": "detection_latency",
                               "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "cycles": args.cycles, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="orgscope-detection-") as tmp:
        for name, full_interval in MODES.items():
            results["modes"][name] = run_mode(name, full_interval, args.cycles, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
