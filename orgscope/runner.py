"""Collection runs: fan collectors out over accounts and regions, isolate failures, record runs.

One *cycle* runs a set of collectors once. It

1. resolves the accounts (config.toml or Organizations discovery) and keeps those of this
   process's account shard (``[organization] shard``, docs/scaling.md);
2. assumes the read role in every account, in parallel; an account that cannot be assumed is
   recorded as unreachable, with the reason, and the others carry on;
3. runs each collector for every reachable (account, region) on a bounded thread pool (payer
   collectors once, in the management account); an exception in one run is caught, recorded
   with its AWS error code, and stays there;
4. checks every frame against its dataset and writes one file per dataset for the cycle;
5. writes a ``runs`` row per (collector, account, region) and, when the cycle includes a
   collector that checks reachability (the inventory), an ``accounts`` row per account.

API calls are counted per run through the session factory's call hook and a context variable
naming the run the current thread works for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from orgscope.access import (
    ACCESS_DENIED_CODES,
    NO_READ_REASON,
    REACHABILITY_WITNESSES,
    UNREACHABLE_PREFIX,
    AccountAccess,
    account_access,
    denied_action,
    denied_code,
)
from orgscope.accounts import Account, accounts_from_config, discover_accounts
from orgscope.aws import (
    EXPIRED_CREDENTIAL_CODES,
    AccessError,
    SessionFactory,
    describe_error,
)
from orgscope.collect import CollectContext, Collected, Collector, Frames, Probe, Window
from orgscope.config import Config
from orgscope.datasets import ACCOUNTS, RUNS, WATERMARKS, SchemaError
from orgscope.sharding import ALL, Shard, parse_shard, runs_org_steps
from orgscope.store import Store

log = logging.getLogger(__name__)

#: Error codes that answer a probe of a made-up resource when the action itself is allowed.
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFoundException",
                             "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                             "NoSuchKey"})


class DiscoveryError(Exception):
    """The organization's accounts could not be listed and config.toml lists none."""


# --- counting API calls ----------------------------------------------------------------------


@dataclass
class CallCounter:
    """API calls made by one run, by operation, and the CloudWatch metrics they requested."""

    by_operation: Counter[str] = field(default_factory=Counter)
    metrics_requested: int = 0
    traces_retrieved: int = 0

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        self.by_operation[f"{service}:{operation}"] += 1
        if operation == "GetMetricData":
            self.metrics_requested += len(params.get("MetricDataQueries", []))
        elif operation == "GetMetricStatistics":
            self.metrics_requested += 1
        elif operation == "BatchGetTraces":
            self.traces_retrieved += len(params.get("TraceIds", []))

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


_current_counter: ContextVar[CallCounter | None] = ContextVar("orgscope_call_counter", default=None)


def count_call(service: str, operation: str, params: dict[str, Any]) -> None:
    """The session factory's call hook: charge the call to the run this thread works for."""
    counter = _current_counter.get()
    if counter is not None:
        counter.record(service, operation, params)


# --- results ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """How one (collector, account, region) run went."""

    collector: str
    account: Account
    region: str
    started_at: datetime
    duration_s: float
    status: str
    error: str | None
    calls: CallCounter
    frames: Frames = field(default_factory=dict)
    watermark: datetime | None = None
    tier: str | None = None

    @property
    def rows(self) -> int:
        return sum(len(frame) for frame in self.frames.values())


@dataclass
class CycleResult:
    """What one cycle did: its runs and each account's reachability."""

    cycle_id: str
    started_at: datetime
    runs: list[RunResult]
    accounts: list[Account]
    #: Each account's access state (readable, partial, no-read, unreachable).
    access: dict[str, AccountAccess] = field(default_factory=dict)

    @property
    def reachability(self) -> dict[str, str | None]:
        """Each account's reason for being unreadable (unreachable or no-read), None when
        anything can be read."""
        return {a: None if s.reachable else s.reason for a, s in self.access.items()}

    @property
    def failed(self) -> list[RunResult]:
        return [run for run in self.runs if run.status != "ok"]


Progress = Callable[[int, int, RunResult], None]


@dataclass(frozen=True)
class Task:
    """One (collector, account, region) run to do, with what the runner read for it."""

    collector: Collector
    account: Account
    region: str
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict)
    watermark: datetime | None = None


# --- pure helpers ----------------------------------------------------------------------------


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or None
    return None


def runs_frame(cycle_id: str, runs: Sequence[RunResult], shard: Shard = ALL) -> pd.DataFrame:
    """Run results -> the ``runs`` dataset (``shard``: this process's share, "K/N")."""
    rows = [
        {
            "run_id": cycle_id,
            "collector": run.collector,
            "account_id": run.account.id,
            "region": run.region,
            "started_at": run.started_at,
            "duration_s": round(run.duration_s, 3),
            "status": run.status,
            "error": run.error,
            "api_calls": run.calls.total,
            "api_calls_by_operation": json.dumps(dict(sorted(run.calls.by_operation.items()))),
            "metrics_requested": run.calls.metrics_requested,
            "traces_retrieved": run.calls.traces_retrieved,
            "rows": run.rows,
            "shard": shard.label,
            "tier": run.tier,
        }
        for run in runs
    ]
    return pd.DataFrame(rows, columns=RUNS.columns)


def account_states(
    accounts: Sequence[Account], assume_errors: dict[str, str], runs: Sequence[RunResult],
    collectors: Sequence[Collector],
) -> dict[str, AccountAccess]:
    """Each account's access state (:mod:`orgscope.access`) from this cycle: unreachable when
    its read role cannot be assumed, no-read when every read was refused, partial when some
    collectors' actions were refused, readable otherwise."""
    actions = {c.name: c.iam_actions for c in collectors}
    by_account: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_account.setdefault(run.account.id, []).append(
            {"collector": run.collector, "region": run.region, "status": run.status,
             "error": run.error, "api_calls": run.calls.total})
    return {a.id: account_access(assume_errors.get(a.id), by_account.get(a.id, []), actions)
            for a in accounts}


def reachability_moves(latest: Mapping[str, tuple[bool, str | None]],
                       states: Mapping[str, AccountAccess]) -> dict[str, AccountAccess]:
    """What a witness's cycle (REACHABILITY_WITNESSES: the metrics collector, every 5 minutes
    while a change feed makes the inventory hourly) tells the ``accounts`` snapshot: an account
    whose role can no longer be assumed, and one recorded unreachable whose role works again.
    Everything else (no-read, partial) waits for the inventory, which reads every action."""
    moved: dict[str, AccountAccess] = {}
    for account_id, state in states.items():
        reachable, reason = latest.get(account_id, (True, None))
        was_unreachable = not reachable and not (reason or "").startswith(NO_READ_REASON)
        if (state.access == "unreachable") != was_unreachable:
            moved[account_id] = state
    return moved


def accounts_frame(
    accounts: Sequence[Account], states: Mapping[str, AccountAccess], checked_at: datetime
) -> pd.DataFrame:
    """The ``accounts`` rows of a cycle: ``reachable`` when anything could be read (readable
    or partial), ``reason`` the state's one-line reason (None when fully readable)."""
    rows = []
    for a in accounts:
        state = states.get(a.id)
        rows.append({
            "account_id": a.id,
            "name": a.name,
            "team": a.team,
            "environment": a.environment,
            "cost_center": a.cost_center,
            "reachable": state.reachable if state else True,
            "reason": state.reason if state else None,
            "checked_at": checked_at,
        })
    return pd.DataFrame(rows, columns=ACCOUNTS.columns)


def watermarks_frame(runs: Sequence[RunResult], updated_at: datetime) -> pd.DataFrame:
    rows = [
        {"collector": run.collector, "account_id": run.account.id, "region": run.region,
         "watermark": run.watermark, "updated_at": updated_at}
        for run in runs
        if run.status == "ok" and run.watermark is not None
    ]
    return pd.DataFrame(rows, columns=WATERMARKS.columns)


Watermarks = dict[tuple[str, str, str], datetime]


def stages(collectors: Sequence[Collector]) -> list[list[Collector]]:
    """Collectors grouped so that each runs after the ones producing its inputs.

    Stage order follows dataset dependencies among ``collectors`` (inputs produced by a
    collector outside the set do not delay anything); order within a stage is kept.
    """
    producer = {d.name: c.name for c in collectors for d in c.datasets}
    remaining = list(collectors)
    done: set[str] = set()
    grouped: list[list[Collector]] = []
    while remaining:
        ready = [c for c in remaining
                 if all(producer.get(name, c.name) in done | {c.name} for name in c.inputs)]
        if not ready:  # a cycle of inputs: run the rest together rather than never
            ready = remaining
        grouped.append(ready)
        done |= {c.name for c in ready}
        remaining = [c for c in remaining if c.name not in done]
    return grouped


def new_cycle_id(now: datetime, shard: Shard = ALL) -> str:
    """The cycle's id, also the name of every file it writes: time first (names sort by
    cycle), the shard when sharded, and a random part, so that no two writers, in one process
    or many, ever pick the same name."""
    part = f"-s{shard.index}of{shard.count}" if shard.sharded else ""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}{part}-{uuid.uuid4().hex[:8]}"


# --- the runner ------------------------------------------------------------------------------


class Runner:
    """Runs collection cycles for one config, session factory and store."""

    def __init__(self, config: Config, factory: SessionFactory, store: Store) -> None:
        self.config = config
        self.factory = factory
        self.store = store
        #: (account, action) pairs whose refusal this process has logged at warning level.
        self._denials_logged: set[tuple[str, str]] = set()
        self._denials_lock = threading.Lock()
        #: This process's account shard (``[organization] shard``, docs/scaling.md).
        self.shard = parse_shard(config.organization.shard)

    @property
    def runs_org_steps(self) -> bool:
        """Whether org-wide work (steps after collection, compaction) runs in this process."""
        return runs_org_steps(self.shard, self.config.organization.org_steps)

    def accounts(self) -> list[Account]:
        """The accounts to watch: from config.toml, or discovered from Organizations.

        When discovery fails, the accounts listed in config.toml are used (with a warning);
        with none listed, :class:`DiscoveryError` says why.
        """
        if self.config.organization.discovery == "config":
            return accounts_from_config(self.config)
        management = self.config.organization.management_account_id
        try:
            organizations = self.factory.client(management, "organizations",
                                                self.config.aws.regions[0])
            return discover_accounts(organizations, self.config)
        except AccessError as error:
            reason = error.reason
        except (ClientError, BotoCoreError) as error:
            reason = describe_error(error)
        fallback = accounts_from_config(self.config)
        if not fallback:
            raise DiscoveryError(
                f"cannot list the organization's accounts from {management}: {reason}")
        log.warning("discovery from %s failed (%s); using the %d accounts in config",
                    management, reason, len(fallback))
        return fallback

    def assume_all(self, accounts: Sequence[Account]) -> dict[str, str]:
        """AssumeRole into every account in parallel -> {account_id: reason} for failures."""
        errors: dict[str, str] = {}

        def attempt(account: Account) -> None:
            try:
                self.factory.session(account.id)
            except AccessError as error:
                errors[account.id] = error.reason
                log.warning("account %s (%s) unreachable: %s", account.id, account.name,
                            error.reason)

        with ThreadPoolExecutor(max_workers=self.config.aws.max_workers) as pool:
            list(pool.map(attempt, accounts))
        return errors

    def probe_access(self, collectors: Sequence[Collector], now: datetime | None = None,
                     ) -> tuple[list[Account], dict[str, AccountAccess], dict[str, list[str]]]:
        """``check-config``'s access check: AssumeRole into every account of this shard, then
        one cheap read per IAM action each collector declares (``Collector.probes``), once per
        (account, region, action). Stores nothing.

        Returns the accounts, each one's access state (a refused action is charged to every
        collector that needs it), and per account the probes that proved nothing ("action in
        region: error": a timeout, throttling, an answer that is neither a success, a refusal
        nor a "not found" for the probe's made-up resource).
        """
        started = (now or datetime.now(UTC)).replace(microsecond=0)
        everyone = self.accounts()
        accounts = self.shard.select(everyone)
        assume_errors = self.assume_all(accounts)
        jobs: dict[tuple[str, str, str], tuple[list[Collector], Account, Probe]] = {}
        for collector, account, region in self._targets(collectors, accounts, everyone):
            if account.id in assume_errors or collector.scope == "local":
                continue
            for action, probe in collector.probes:
                job = jobs.setdefault((account.id, region, action), ([], account, probe))
                job[0].append(collector)

        def attempt(key: tuple[str, str, str]) -> tuple[str | None, bool]:
            needing, account, probe = jobs[key]
            region = key[1]
            ctx = CollectContext(
                account=account, region=region, window=Window(started, started),
                collected_at=started, settings=self.config.collector(needing[0].name),
                client_factory=lambda service: self.factory.client(account.id, service, region))
            try:
                probe(ctx)
            except (ClientError, BotoCoreError, AccessError) as exc:
                error = exc.reason if isinstance(exc, AccessError) else describe_error(exc)
                if denied_code(error) is not None:
                    return error, True
                # AWS authorizes before it looks for the probe's made-up resource: "not found"
                # proves the action; anything else proves nothing
                return (None, False) if error_code(exc) in NOT_FOUND_CODES else (error, False)
            return None, False

        with ThreadPoolExecutor(max_workers=self.config.aws.max_workers) as pool:
            outcomes = dict(zip(sorted(jobs), pool.map(attempt, sorted(jobs)), strict=True))
        by_account: dict[str, list[dict[str, Any]]] = {}
        unknown: dict[str, list[str]] = {}
        for (account_id, region, action), (error, denied) in outcomes.items():
            if error is not None and not denied:
                unknown.setdefault(account_id, []).append(f"{action} in {region}: {error}")
                continue
            for collector in jobs[(account_id, region, action)][0]:
                by_account.setdefault(account_id, []).append(
                    {"collector": collector.name, "region": region,
                     "status": "error" if denied else "ok", "error": error, "api_calls": 1})
        actions = {c.name: c.iam_actions for c in collectors}
        states = {a.id: account_access(assume_errors.get(a.id), by_account.get(a.id, []),
                                       actions) for a in accounts}
        return accounts, states, unknown

    def _inputs(self, collectors: Sequence[Collector]) -> dict[str, pd.DataFrame]:
        """The latest snapshot of every dataset the collectors read, once per cycle."""
        names = sorted({name for collector in collectors for name in collector.inputs})
        return {name: self.store.query(f'SELECT * FROM "{name}"') for name in names}

    def _watermarks(self, collectors: Sequence[Collector]) -> Watermarks:
        names = [c.name for c in collectors]
        frame = self.store.query(
            "SELECT collector, account_id, region, watermark FROM watermarks "
            "WHERE list_contains(?, collector)", [names])
        return {
            (str(row["collector"]), str(row["account_id"]), str(row["region"])):
                pd.Timestamp(row["watermark"]).to_pydatetime()
            for row in frame.to_dict("records")
        }

    def _run_one(self, task: Task, started: datetime) -> RunResult:
        collector, account, region = task.collector, task.account, task.region
        counter = CallCounter()
        token = _current_counter.set(counter)
        clock = time.monotonic()
        settings = self.config.collector(collector.name)
        ctx = CollectContext(
            account=account,
            region=region,
            window=Window(start=started - settings.interval, end=started),
            collected_at=started,
            client_factory=lambda service: self.factory.client(account.id, service, region),
            settings=settings,
            inputs=task.inputs,
            watermark=task.watermark,
        )
        status, error, frames, denied, new_watermark = "ok", None, {}, False, None
        tier: str | None = None
        try:
            returned = self._collect(ctx, collector)
            if isinstance(returned, Collected):
                frames, new_watermark = returned.frames, returned.watermark
                tier = returned.tier
            else:
                frames = returned
            for dataset in collector.datasets:
                dataset.to_table(frames.get(dataset.name, dataset.empty_frame()))
        except AccessError as exc:
            status, error, denied = "error", exc.reason, True
        except (ClientError, BotoCoreError) as exc:
            status, error = "error", describe_error(exc)
            denied = error_code(exc) in ACCESS_DENIED_CODES
        except SchemaError as exc:
            status, error = "error", f"SchemaError: {exc}"
            log.error("collector %s returned a frame that breaks its contract: %s",
                      collector.name, exc)
        except Exception as exc:  # a bug in one collector must not stop the others
            status, error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("collector %s failed in %s %s", collector.name, account.id, region)
        finally:
            _current_counter.reset(token)
        if status != "ok":
            frames = {}
            self._log_failure(collector, account, region, str(error), denied)
        duration = time.monotonic() - clock
        log.info("%s %s %s: %s in %.2fs, %d API calls, %d rows", collector.name, account.id,
                 region, status, duration, counter.total, sum(len(f) for f in frames.values()))
        return RunResult(collector.name, account, region, started, duration, status, error,
                         counter, frames, new_watermark, tier)

    def _collect(self, ctx: CollectContext, collector: Collector) -> Frames | Collected:
        """Run the collector; when AWS refuses the account's credentials as expired (a revoked
        session, clock skew), assume the role again and run it once more."""
        try:
            return collector.fn(ctx)
        except ClientError as exc:
            if error_code(exc) not in EXPIRED_CREDENTIAL_CODES:
                raise
            self.factory.forget(ctx.account.id)
            return collector.fn(ctx)

    def _log_failure(self, collector: Collector, account: Account, region: str, error: str,
                     denied: bool) -> None:
        """A failed run's warning; a refused action only the first time this process sees it
        refused in that account (then at debug): a role missing one permission would otherwise
        repeat the same denial for every region on every run."""
        if not denied or error.startswith(UNREACHABLE_PREFIX):
            log.warning("%s %s %s: %s", collector.name, account.id, region, error)
            return
        action = denied_action(error, collector.iam_actions)
        with self._denials_lock:
            first = (account.id, action) not in self._denials_logged
            self._denials_logged.add((account.id, action))
        log.log(logging.WARNING if first else logging.DEBUG,
                "the read role in %s (%s) may not %s, which collector %s needs (logged once "
                "per account and action): %s", account.id, account.name, action,
                collector.name, error)

    def _targets(
        self, collectors: Sequence[Collector], accounts: Sequence[Account],
        everyone: Sequence[Account] | None = None,
    ) -> list[tuple[Collector, Account, str]]:
        """(collector, account, region) runs: regional collectors in each of ``accounts``
        (this shard's); a once-per-organization collector only in the shard that owns the
        account it runs in (``everyone``, the whole organization, names that account)."""
        targets = []
        by_id = {a.id: a for a in (everyone if everyone is not None else accounts)}
        for collector in collectors:
            if collector.scope == "local":
                monitoring = self.config.organization.monitoring_account_id
                if not self.shard.owns(monitoring):
                    continue
                local = by_id.get(monitoring) or Account(monitoring, "monitoring", "platform")
                targets.append((collector, local, self.config.aws.regions[0]))
            elif collector.scope == "payer":
                payer_id = self.config.organization.management_account_id
                if not self.shard.owns(payer_id):
                    continue
                payer = by_id.get(payer_id) or Account(payer_id, "management", "platform")
                targets.append((collector, payer, self.config.aws.regions[0]))
            else:
                for account in accounts:
                    for region in self.config.aws.regions:
                        targets.append((collector, account, region))
        return targets

    def run_cycle(
        self,
        collectors: Sequence[Collector],
        progress: Progress | None = None,
        now: datetime | None = None,
    ) -> CycleResult:
        """Run ``collectors`` once over every account and region of this process's shard;
        store what they return."""
        started = (now or datetime.now(UTC)).replace(microsecond=0)
        cycle_id = new_cycle_id(started, self.shard)
        everyone = self.accounts()
        accounts = self.shard.select(everyone)
        if self.shard.sharded:
            log.info("shard %s: %d of %d accounts", self.shard.label, len(accounts),
                     len(everyone))
        assume_errors = self.assume_all(accounts)
        inputs = self._inputs(collectors)
        watermarks = self._watermarks(collectors)
        targets = self._targets(collectors, accounts, everyone)
        results: list[RunResult] = []
        pending = []
        for collector, account, region in targets:
            # a local collector reads no AWS: an unreachable monitoring account does not stop it
            if account.id in assume_errors and collector.scope != "local":
                results.append(
                    RunResult(collector.name, account, region, started, 0.0, "error",
                              f"{UNREACHABLE_PREFIX}{assume_errors[account.id]}",
                              CallCounter())
                )
            else:
                pending.append((collector, account, region))
        total = len(targets)
        if progress:
            for result in results:
                progress(len(results), total, result)
        with ThreadPoolExecutor(max_workers=self.config.aws.max_workers) as pool:
            futures = [
                pool.submit(self._run_one,
                            Task(c, a, r, {name: inputs[name] for name in c.inputs},
                                 watermarks.get((c.name, a.id, r))),
                            started)
                for c, a, r in pending
            ]
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                if progress:
                    progress(len(results), total, result)
        self._store(cycle_id, collectors, results)
        states = account_states(accounts, assume_errors, results, collectors)
        if any(c.checks_reachability for c in collectors):
            self.store.write(ACCOUNTS.name, accounts_frame(accounts, states, started), cycle_id)
        elif any(c.name in REACHABILITY_WITNESSES for c in collectors):
            moved = reachability_moves(self._latest_access(), states)
            if moved:
                chosen = [a for a in accounts if a.id in moved]
                self.store.write(ACCOUNTS.name, accounts_frame(chosen, moved, started),
                                 cycle_id)
        self.store.write(WATERMARKS.name, watermarks_frame(results, started), cycle_id)
        self.store.write(RUNS.name, runs_frame(cycle_id, results, self.shard), cycle_id)
        return CycleResult(cycle_id, started, results, accounts, states)

    def _latest_access(self) -> dict[str, tuple[bool, str | None]]:
        """Each account's newest ``accounts`` row: (reachable, reason)."""
        frame = self.store.query("SELECT account_id, reachable, reason FROM accounts")
        return {str(r["account_id"]): (bool(r["reachable"]),
                                       r["reason"] if isinstance(r["reason"], str) else None)
                for r in frame.to_dict("records")}

    def run_target(self, collector: Collector, account: Account, region: str,
                   inputs: dict[str, pd.DataFrame], now: datetime | None = None) -> RunResult:
        """Run ``collector`` once in one account and region with ``inputs`` given (a change
        event's re-read, orgscope/change_feed.py); store its frames and its ``runs`` row like a
        cycle's (no ``accounts`` or watermark rows: one account-region says nothing of the
        rest). The start keeps its microseconds: two re-reads within a second are two
        snapshots, not one."""
        started = now or datetime.now(UTC)
        cycle_id = new_cycle_id(started, self.shard)
        result = self._run_one(Task(collector, account, region, inputs), started)
        self._store(cycle_id, [collector], [result])
        self.store.write(RUNS.name, runs_frame(cycle_id, [result], self.shard), cycle_id)
        return result

    def _store(self, cycle_id: str, collectors: Sequence[Collector],
               results: Sequence[RunResult]) -> None:
        for collector in collectors:
            for dataset in collector.datasets:
                frames = [
                    r.frames[dataset.name]
                    for r in results
                    if r.collector == collector.name and len(r.frames.get(dataset.name, ())) > 0
                ]
                if frames:
                    combined = pd.concat(frames, ignore_index=True)
                    self.store.write(dataset.name, combined, cycle_id)
