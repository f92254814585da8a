"""The `orgscope` command.

    orgscope [--config PATH] [--store PATH] [-v] COMMAND

Commands: check-config, collect, query, alerts, health, heal, compact, cost close, bill, serve,
sim, dashboard, demo. A user mistake (bad config, bad SQL, unknown collector) prints one clear line
per problem and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import pandas as pd

from dashboard.access import is_loopback
from orgscope import __version__, logsafety, plugins, wiring
from orgscope.access import ACCESS_MEANINGS, ACCESS_STATES
from orgscope.collect import Collector
from orgscope.config import Config, ConfigError
from orgscope.health.update import update_rule_health, verdict_summary
from orgscope.readonly_query import QueryRefused, run_query
from orgscope.runner import DiscoveryError, RunResult, stages
from orgscope.sharding import parse_shard
from orgscope.store import StoreError
from orgscope.tables import render_table
from orgscope.untrusted import csv_bytes

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how orgscope was called; printed as one line, exit status 2."""


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def configure_logging(verbose: int, quiet: bool = False) -> None:
    """Log to stderr at the level ``-v``/``-vv`` (or the command's quiet default) asks for,
    every record redacted and on one line (:mod:`orgscope.logsafety`). Like
    :func:`logging.basicConfig`, changes nothing when the root logger already has a handler."""
    level = logging.WARNING if quiet else logging.INFO
    if verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        root.setLevel(level)
        handler = logging.StreamHandler(sys.stderr)
        logsafety.install(handler, LOG_FORMAT, LOG_DATE_FORMAT)
        root.addHandler(handler)
    for noisy in ("botocore", "urllib3", "apscheduler", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _load(args: argparse.Namespace) -> Config:
    return wiring.load(args.config, store=args.store)


# --- check-config ----------------------------------------------------------------------------


def _slack_notes(config: Config) -> list[str]:
    """A note per Slack webhook variable config.toml names that is unset (alerts to it are
    recorded as failed, not sent)."""
    names = [] if config.slack.default_webhook_secret else [config.slack.default_webhook_env]
    names += [route.webhook_env for route in config.slack.routes if route.webhook_env]
    return [f"note: ${name} is empty: Slack messages routed to it are recorded as failed, not "
            "sent (docs/alerts.md)" for name in dict.fromkeys(names)
            if not os.environ.get(name)]


def _dashboard_notes(config: Config) -> list[str]:
    """What check-config says of an exposed dashboard (or one that requires sign-in): its
    readers must sign in, and an empty allow-list lets nobody read."""
    dashboard = config.dashboard
    exposed = not is_loopback(dashboard.address)
    if not exposed and dashboard.require_login != "always":
        return []
    why = (f"address {dashboard.address!r} is not loopback" if exposed
           else 'require_login = "always"')
    notes = [f"note: the dashboard requires sign-in ({why}): configure an OIDC provider in "
             "dashboard/.streamlit/secrets.toml (docs/dashboard.md, 'Sign-in when exposed')"]
    if not dashboard.allowed_emails and not dashboard.allowed_domains:
        notes.append("note: [dashboard] allowed_emails and allowed_domains are empty, so nobody "
                     "may read the dashboard: list the readers, or allowed_domains = [\"*\"] "
                     "for everyone the provider vouches for")
    return notes


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{config.source}: valid ({len(config.accounts)} accounts listed, "
          f"regions {', '.join(config.aws.regions)}, discovery={config.organization.discovery})")
    for line in [*_slack_notes(config), *_dashboard_notes(config)]:
        print(line)
    if args.no_aws:
        return EXIT_OK
    if not os.environ.get(config.aws.external_id_env):
        print(f"note: ${config.aws.external_id_env} is empty, so AssumeRole is called without "
              "an ExternalId; the read roles from orgscope/iam/ (member and management "
              "templates) refuse that.")
    runner = wiring.runner(config)
    collectors = [plugins.collector(name) for name in plugins.COLLECTORS
                  if config.collector(name).enabled]
    print(f"AssumeRole {config.aws.read_role_name} into each account, then one cheap read per "
          "permission each enabled collector needs (Cost Explorer's costs $0.01):")
    accounts, states, unknown = runner.probe_access(collectors)
    rows = [
        {
            "account": a.name,
            "id": a.id,
            "team": a.team,
            "access": states[a.id].access,
            "refused": len(states[a.id].denied_labels()) or "",
            "reason": "" if states[a.id].denials else (states[a.id].reason or ""),
        }
        for a in accounts
    ]
    print(render_table(pd.DataFrame(rows)))
    for a in accounts:
        if states[a.id].denials:
            print(f"{a.id} ({a.name}) {states[a.id].access}: the read role may not "
                  + ", ".join(states[a.id].denied_labels()))
        for line in unknown.get(a.id, []):
            print(f"{a.id} ({a.name}) could not be probed: {line}")
    counts = {state: sum(s.access == state for s in states.values()) for state in ACCESS_STATES}
    if unknown:
        print(f"{len(unknown)} accounts could not be probed fully (above): run check-config "
              "again; their access is not known.")
    if counts["readable"] == len(accounts) and not unknown:
        print(f"All {len(accounts)} accounts readable.")
        return EXIT_OK
    print(", ".join(f"{n} {state} ({ACCESS_MEANINGS[state]})" for state, n in counts.items()
                    if n and state != "readable")
          + f"; {counts['readable']} of {len(accounts)} readable. docs/iam.md says what each "
          "permission is for.")
    return EXIT_FAILED


# --- collect ---------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()
        self.failed = 0

    def __call__(self, done: int, total: int, result: RunResult) -> None:
        if result.status != "ok":
            self.failed += 1
        if not self.enabled:
            return
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        label = f"{result.collector} {result.account.name} {result.region}"
        self.stream.write(f"\r[{bar}] {done}/{total} failed {self.failed}  {label[:40]:<40}")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _selected(only: Sequence[str] | None) -> list[Collector]:
    if not only:
        return list(plugins.COLLECTORS.values())
    try:
        return [plugins.collector(name) for name in only]
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None


def _sharded(config: Config, args: argparse.Namespace) -> Config:
    """The config with ``--shard`` and ``--steps`` (when given) over [organization] shard and
    org_steps."""
    update: dict[str, str] = {}
    if args.shard is not None:
        try:
            update["shard"] = parse_shard(args.shard).label
        except ValueError as error:
            raise UsageError(f"--shard: {error}") from None
    if args.steps is not None:
        update["org_steps"] = args.steps
    if not update:
        return config
    return config.model_copy(
        update={"organization": config.organization.model_copy(update=update)})


def _add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", metavar="K/N",
                        help="collect only account shard K of N (a stable hash of the account "
                             "id; docs/scaling.md); default: [organization] shard, else 1/1")
    parser.add_argument("--steps", choices=("auto", "run", "skip"),
                        help="run the org-wide steps (health, traces, heal, alerts) and "
                             "compaction here: auto = only on shard 1 (default: [organization] "
                             "org_steps)")


def cmd_collect(args: argparse.Namespace) -> int:
    config = _sharded(_load(args), args)
    if not args.once:
        raise UsageError("collect runs one cycle: pass --once (use `orgscope serve` to keep "
                         "collecting on a schedule)")
    collectors = _selected(args.only)
    runner = wiring.runner(config)
    # Collectors that read another's dataset (metrics and dlq read the inventory) run in a
    # later cycle than it, so a first run on an empty store reads everything.
    bar = ProgressBar(sys.stderr)
    cycles = [runner.run_cycle(stage, progress=bar) for stage in stages(collectors)]
    runs = [run for cycle in cycles for run in cycle.runs]
    rows = [
        {
            "collector": run.collector,
            "account": run.account.name,
            "id": run.account.id,
            "region": run.region,
            "status": run.status,
            "seconds": round(run.duration_s, 2),
            "api_calls": run.calls.total,
            "rows": run.rows,
            "error": run.error or "",
        }
        for run in sorted(runs, key=lambda r: (r.collector, r.account.name, r.region))
    ]
    print(render_table(pd.DataFrame(rows)))
    failed = [run for cycle in cycles for run in cycle.failed]
    label = "cycle" if len(cycles) == 1 else "cycles"
    print(f"{label} {', '.join(c.cycle_id for c in cycles)}: {len(runs) - len(failed)} ok, "
          f"{len(failed)} failed; stored under {runner.store.location}")
    for name, summary in plugins.run_steps(runner, [c.name for c in collectors]).items():
        print(summary if summary is not None else f"{name}: failed (see the log above)")
    if not runner.runs_org_steps:
        where = "shard 1 runs them" if config.organization.org_steps == "auto" \
            else "org_steps = skip"
        print(f"shard {runner.shard.label}: org-wide steps not run here ({where}; "
              "--steps run runs them here)")
    return EXIT_FAILED if failed else EXIT_OK


# --- alerts ----------------------------------------------------------------------------------


def cmd_alerts(args: argparse.Namespace) -> int:
    from alerts.step import drain, run_alerts

    config = _load(args)
    if not (args.once or args.drain):
        raise UsageError("alerts runs once: pass --once (evaluate and deliver) or --drain "
                         "(deliver what the outbox holds); `orgscope serve` evaluates after "
                         "every collection")
    if args.wait is not None and not 0 <= args.wait <= 3600:
        raise UsageError(f"--wait {args.wait}: must be between 0 and 3600 seconds")
    store = wiring.open_store(config)
    factory = wiring.session_factory(config)
    if args.drain:
        report = drain(config, store, factory, args.wait)
        print(report.summary())
        return EXIT_OK if not report.failed else EXIT_FAILED
    run = run_alerts(config, store, factory, deliver=not args.no_deliver, max_wait_s=args.wait)
    rows = [{"state": a.state, "severity": a.severity, "alert": a.alert_name,
             "account": a.account_id or "", "region": a.region or "", "team": a.team or "",
             "summary": a.summary[:100], "silenced_by": a.silenced_by or ""}
            for a in run.open_alerts]
    if rows:
        print(render_table(pd.DataFrame(rows)))
    print(run.summary())
    failed = run.delivery is not None and bool(run.delivery.failed)
    return EXIT_FAILED if failed else EXIT_OK


# --- health ----------------------------------------------------------------------------------


def cmd_health(args: argparse.Namespace) -> int:
    config = _load(args)
    store = wiring.open_store(config)
    now = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            raise UsageError(f"--at {args.at!r}: not an ISO 8601 time such as "
                             "2026-11-26T14:00:00Z") from None
        now = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    # a look at another moment is printed, not stored as the latest verdict
    verdicts = update_rule_health(config, store, now, write=now is None)
    print(verdict_summary(verdicts))
    bad = verdicts[verdicts["verdict"] != "OK"].sort_values(["verdict", "account_id", "rule"])
    rows = [{"verdict": r["verdict"], "account": r["account_id"], "region": r["region"],
             "bus": r["bus"], "rule": r["rule"], "reasons": "; ".join(list(r["reasons"]))}
            for r in bad.to_dict("records")]
    if rows:
        print(render_table(pd.DataFrame(rows)))
    return EXIT_OK


# --- heal ------------------------------------------------------------------------------------


def cmd_heal(args: argparse.Namespace) -> int:
    from heal.run import run_heal

    config = _load(args)
    if not args.once:
        raise UsageError("heal runs once: pass --once (orgscope serve heals after every "
                         "inventory when [heal] enabled = true)")
    if not config.heal.enabled and not args.dry_run:
        raise UsageError(f"auto-heal is off ([heal] enabled = false in {config.source}): "
                         "set it to true, or pass --dry-run to see what it would do")
    dry_run = True if args.dry_run else config.heal.dry_run
    report = run_heal(config, wiring.open_store(config), wiring.session_factory(config),
                      dry_run=dry_run)
    print(report.summary())
    table = report.table()
    if not table.empty:
        print(render_table(table))
    return EXIT_FAILED if report.results.get("failed") else EXIT_OK


# --- query -----------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace) -> int:
    config = _load(args)
    store = wiring.open_store(config)
    try:
        frame = run_query(store, args.sql)
    except QueryRefused as error:
        raise UsageError(f"query refused: {error}") from None
    except StoreError as error:
        views = ", ".join(store.view_names())
        raise UsageError(f"query failed: {error} (views: {views})") from None
    if args.format == "csv":  # opened in a spreadsheet: text that would be a formula is quoted
        sys.stdout.write(csv_bytes(frame).decode("utf-8"))
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")
    else:
        print(render_table(frame))
    return EXIT_OK


# --- compact ---------------------------------------------------------------------------------


def cmd_compact(args: argparse.Namespace) -> int:
    config = _load(args)
    store = wiring.open_store(config)
    if args.keep_days < 1:
        raise UsageError(f"--keep-days {args.keep_days}: must be 1 or more (1 keeps today)")
    before = datetime.now(UTC).date() - timedelta(days=args.keep_days - 1)
    report = store.compact_all(before=before)
    total = sum(report.merged.values())
    print(f"compacted {total} files in {len(report.merged)} datasets (days before {before})")
    for name, count in sorted(report.merged.items()):
        print(f"  {name}: {count} files")
    for line in report.lines():
        print(f"  {line}")
    return EXIT_OK if report.ok else EXIT_FAILED


# --- cost ------------------------------------------------------------------------------------


def cmd_cost_close(args: argparse.Namespace) -> int:
    from orgscope.cost.review import month_end
    from orgscope.cost.store_io import close_month

    config = _load(args)
    month = str(args.month)
    try:
        last = month_end(month)
    except ValueError:
        raise UsageError(f"{month!r}: not a month such as 2026-10") from None
    now = datetime.now(UTC)
    if last >= now.date():
        raise UsageError(f"{month} is not over yet: only a complete month can be closed")
    try:
        rows = close_month(wiring.open_store(config), config, month, now)
    except ValueError as error:
        raise UsageError(str(error)) from None
    teams = rows.groupby("team")["amount"].sum().reset_index().sort_values(
        "amount", ascending=False)
    teams["amount"] = teams["amount"].round(2)
    print(f"closed {month}: {rows['amount'].sum():,.2f} {rows['currency'].iloc[0]} "
          f"in {len(rows)} rows (cost_closed_months)")
    print(render_table(teams))
    return EXIT_OK


# --- bill ------------------------------------------------------------------------------------


def _what_if(values: Sequence[str] | None) -> dict[str, timedelta]:
    """--interval COLLECTOR=DURATION options -> {collector: interval}."""
    from orgscope.config import parse_interval

    found = {}
    for value in values or ():
        name, _, text = value.partition("=")
        if name not in plugins.COLLECTORS or not text:
            raise UsageError(f"--interval {value!r}: expected COLLECTOR=DURATION such as "
                             f"metrics=15m (collectors: {', '.join(plugins.COLLECTORS)})")
        try:
            found[name] = parse_interval(text)
        except ValueError as error:
            raise UsageError(f"--interval {value!r}: {error}") from None
    return found


def cmd_bill(args: argparse.Namespace) -> int:
    from orgscope import bill
    from orgscope.config import format_interval

    config = _load(args)
    intervals = _what_if(args.interval)
    usage = bill.read_usage(wiring.open_store(config), datetime.now(UTC),
                            windows=bill.sample_windows(config, plugins.COLLECTORS))
    if usage.empty:
        print(f"no collection run in the last {format_interval(bill.LOOKBACK)}: nothing to "
              "estimate (run `orgscope collect --once`)")
        return EXIT_OK
    billed = bill.bill(usage, config, intervals)
    if args.accounts:
        rows = billed.assign(
            interval=billed["interval_s"].map(lambda s: format_interval(timedelta(seconds=s))),
            monthly_usd=billed["monthly_usd"].round(4), last_run=billed["last_started_at"])
        print(render_table(rows[["collector", "account_id", "region", "status", "last_run",
                                 "last_duration_s", "last_api_calls", "interval",
                                 "monthly_usd", "last_error"]]))
    totals = bill.by_collector(billed)
    shown = totals.assign(
        interval=totals["interval_s"].map(lambda s: format_interval(timedelta(seconds=s))))
    for column in ("api_calls_per_month", "cloudwatch_usd", "cost_explorer_usd", "xray_usd",
                   "s3_usd", "monthly_usd"):
        shown[column] = shown[column].round(0 if column == "api_calls_per_month" else 2)
    print(render_table(shown[["collector", "interval", "accounts", "unreachable", "errors",
                              "api_calls_per_month", "cloudwatch_usd", "cost_explorer_usd",
                              "xray_usd", "s3_usd", "monthly_usd"]]))
    label = " with " + ", ".join(f"{k} every {format_interval(v)}"
                                 for k, v in intervals.items()) if intervals else ""
    print(f"estimated monthly bill{label}: ${totals['monthly_usd'].sum():,.2f} "
          "(30-day month; docs/performance.md)")
    return EXIT_OK


# --- long-running commands -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from orgscope.change_feed import ChangeQueueError
    from orgscope.scheduler import serve

    config = _sharded(_load(args), args)
    try:
        return serve(wiring.runner(config), list(plugins.COLLECTORS.values()),
                     plugins.run_steps, reread=plugins.reread)
    except ChangeQueueError as error:
        raise UsageError(str(error)) from error


def _load_world(args: argparse.Namespace) -> Config:
    """The config of ``--org``: harbor's own (sim/orgs/harbor.toml) unless --config names
    another; the reference one otherwise."""
    if args.org == "harbor" and not args.config:
        from sim.shapes import CONFIG

        return wiring.load(CONFIG, store=args.store)
    return _load(args)


def cmd_sim(args: argparse.Namespace) -> int:
    from sim.cli import run_sim

    config = _load_world(args)
    return run_sim(config.source, port=args.port, scenario=args.scenario, tick_s=args.tick,
                   world=args.org)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from orgscope.processes import run_dashboard

    config = _load(args)
    return run_dashboard(config, port=args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from orgscope.demo import run_demo

    config = _load_world(args)
    return run_demo(config, port=args.port, scenario=args.scenario, tick_s=args.tick,
                    world=args.org)


# --- parser ----------------------------------------------------------------------------------

#: The simulated organizations ``sim`` and ``demo`` can play (docs/simulator.md).
WORLDS = ("quickgrocer", "harbor")
WORLDS_HELP = ("which simulated organization: quickgrocer (the reference, config.toml) or "
               "harbor (the second, shaped unlike it: sim/orgs/harbor.toml unless --config)")


def _add_alerts_parser(commands: Any) -> None:
    alerts = commands.add_parser(
        "alerts", help="evaluate the alert rules now, queue and send Slack messages")
    alerts.add_argument("--once", action="store_true",
                        help="evaluate once, deliver, print the open alerts")
    alerts.add_argument("--drain", action="store_true",
                        help="only deliver what the outbox holds (no evaluation)")
    alerts.add_argument("--no-deliver", action="store_true",
                        help="evaluate and queue, leave the messages in the outbox")
    alerts.add_argument("--wait", type=float, metavar="SECONDS",
                        help="wait this long for retries that fall due (default: "
                             "[slack] drain_wait_s)")
    alerts.set_defaults(func=cmd_alerts, quiet=True)


def _add_bill_parser(commands: Any) -> None:
    bill_parser = commands.add_parser(
        "bill", help="what the collectors cost in AWS API charges a month (estimated from runs)")
    bill_parser.add_argument("--accounts", action="store_true",
                             help="also list every collector, account and region")
    bill_parser.add_argument("--interval", action="append", metavar="COLLECTOR=DURATION",
                             help="price a collector at another interval, e.g. metrics=15m "
                                  "(repeatable)")
    bill_parser.set_defaults(func=cmd_bill, quiet=True)


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 (a few lines per command)
    parser = argparse.ArgumentParser(
        prog="orgscope",
        description="Cross-account observability and cost for event-driven AWS organizations.",
        epilog="Docs: docs/README.md. Config reference: docs/config.md.",
    )
    parser.add_argument("--version", action="version", version=f"orgscope {__version__}")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $ORGSCOPE_CONFIG, else ./config.toml)")
    parser.add_argument("--store", metavar="PATH",
                        help="override store.path from the config (a folder or file:// URL)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check-config", help="validate the config and try AssumeRole into every account")
    check.add_argument("--no-aws", action="store_true", help="only validate the file")
    check.set_defaults(func=cmd_check_config, quiet=True)

    collect = commands.add_parser("collect", help="run the collectors once")
    collect.add_argument("--once", action="store_true", help="run one cycle and exit")
    collect.add_argument("--only", action="append", metavar="NAME",
                         help=f"run only this collector (repeatable; known: "
                              f"{', '.join(plugins.COLLECTORS)})")
    _add_shard_arguments(collect)
    collect.set_defaults(func=cmd_collect, quiet=True)

    query = commands.add_parser(
        "query", help="run one read-only DuckDB SELECT over the stored datasets")
    query.add_argument("sql", help='one SELECT, for example "select count(*) from rules" (no '
                                   'COPY, ATTACH, INSTALL, SET, PRAGMA or second statement)')
    query.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="csv: text a spreadsheet would run as a formula (= + - @) gets a "
                       "leading quote")
    query.set_defaults(func=cmd_query, quiet=True)

    _add_alerts_parser(commands)

    health = commands.add_parser(
        "health", help="evaluate every rule's event-flow verdict now (and store it); list those "
                       "not OK")
    health.add_argument("--at", metavar="TIME",
                        help="evaluate as of this ISO 8601 time (UTC unless it says otherwise); "
                             "printed, not stored")
    health.set_defaults(func=cmd_health, quiet=True)

    heal = commands.add_parser(
        "heal", help="re-enable DISABLED rules that are safe to heal, once (docs/heal.md)")
    heal.add_argument("--once", action="store_true", help="decide and act once, then exit")
    heal.add_argument("--dry-run", action="store_true",
                      help="make no write call: print and record what would be re-enabled")
    heal.set_defaults(func=cmd_heal, quiet=True)

    compact = commands.add_parser(
        "compact", help="merge each past day's files into one per dataset (serve compacts hourly)")
    compact.add_argument("--keep-days", type=int, default=1, metavar="N",
                         help="leave the last N days as they are (default 1: today)")
    compact.set_defaults(func=cmd_compact, quiet=False)

    cost = commands.add_parser("cost", help="per-team cost: close a month for the review")
    cost_commands = cost.add_subparsers(dest="cost_command", metavar="ACTION", required=True)
    close = cost_commands.add_parser(
        "close", help="snapshot a month's per-team numbers; later restatements show as a diff")
    close.add_argument("month", metavar="YYYY-MM")
    close.set_defaults(func=cmd_cost_close, quiet=True)

    _add_bill_parser(commands)
    serve = commands.add_parser("serve", help="run the collectors on their schedules")
    _add_shard_arguments(serve)
    serve.set_defaults(func=cmd_serve, quiet=False)

    sim = commands.add_parser("sim", help="run the simulated organization on a local endpoint")
    sim.add_argument("--port", type=int, default=5000, help="endpoint port (default 5000)")
    sim.add_argument("--scenario", metavar="FILE", help="fault timeline (TOML)")
    sim.add_argument("--tick", type=float, default=60.0, help="seconds between traffic ticks")
    sim.add_argument("--org", choices=WORLDS, default="quickgrocer", help=WORLDS_HELP)
    sim.set_defaults(func=cmd_sim, quiet=False)

    dashboard = commands.add_parser("dashboard", help="run the Streamlit dashboard")
    dashboard.add_argument("--port", type=int, help="port (default: dashboard.port)")
    dashboard.set_defaults(func=cmd_dashboard, quiet=False)

    demo = commands.add_parser(
        "demo", help="simulator + scheduler + dashboard together (what `make demo` runs)")
    demo.add_argument("--port", type=int, help="dashboard port (default: dashboard.port)")
    demo.add_argument("--scenario", metavar="FILE", help="fault timeline (TOML)")
    demo.add_argument("--tick", type=float, default=30.0, help="seconds between traffic ticks")
    demo.add_argument("--org", choices=WORLDS, default="quickgrocer", help=WORLDS_HELP)
    demo.set_defaults(func=cmd_demo, quiet=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, quiet=args.quiet)
    try:
        status: int = args.func(args)
    except ConfigError as error:
        for line in error.lines:
            print(f"orgscope: {line}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, StoreError, DiscoveryError) as error:
        print(f"orgscope: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
