"""SimulatedOrg: the QuickGrocer organization on moto's server, with traffic and faults.

    org = SimulatedOrg(config)
    endpoint = org.start()        # server + organization + history back-fill
    org.start_traffic()           # tick() every tick_s seconds in a background thread
    ...
    org.stop()                    # stops the thread and the server, empties moto's state

moto keeps its state in module-level backends, so one SimulatedOrg runs per process at a time;
:meth:`stop` resets that state so the next one starts clean.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from collectors.cost import CostCollectorConfig
from orgscope.config import Config
from sim import faults as state_faults
from sim.admin import AdminSessions
from sim.build import Builder, Deployment
from sim.costexplorer import PAGE_GROUPS, CostFeed
from sim.costs import CostModel, CostSpike, Restatement, default_spikes
from sim.data_export import DataExport, topology_resources
from sim.discovery import SchemaRegistry
from sim.emit import put_metrics, put_segments, put_span_events, send_dead_letters
from sim.scenario import ScenarioEvent, duration_of, load_scenario
from sim.server import GatedMotoServer, ServedOrganization
from sim.state import World, read_world
from sim.topology import HISTORY_CHANGES, SCHEMA_CHANGES, STREAMS
from sim.tracing import (
    ACCOUNT_OF,
    OTEL_SERVICES,
    SERVICES,
    TRACED_RULE,
    FlowSegments,
    TraceFault,
    TraceFaults,
    documents_json,
    minute_segments,
)
from sim.traffic import (
    Fault,
    Faults,
    MinuteResult,
    Rollout,
    Rollouts,
    TrafficModel,
    bus_admits,
    merge_metrics,
)

log = logging.getLogger(__name__)

BreakHow = Literal["missing-role", "no-permissions"]
#: Buses with schema discovery on (account name, bus; None: the central bus); every other
#: bus has none (docs/simulator.md, "Schema discovery").
DISCOVERING_BUSES: tuple[tuple[str | None, str], ...] = ((None, ""),
                                                         ("order-processing", "default"))


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class SimulatedOrg(ServedOrganization):
    """The reference organization, played on a local AWS endpoint."""

    def __init__(self, config: Config, *, host: str = "127.0.0.1", port: int = 0,
                 tick_s: float = 60.0, history_hours: int = 6,
                 scenario: Path | None = None, seed: int = 7,
                 cost_page_groups: int = PAGE_GROUPS, change_events: bool = False,
                 data_export: bool | None = None) -> None:
        self.config = config
        cost_settings = config.collector_settings("cost", CostCollectorConfig)
        #: Write the cost model as a FOCUS data export to S3 too (sim/data_export.py); by
        #: default when config.toml's cost collector reads one.
        self.data_export: DataExport | None = DataExport(
            config.organization.management_account_id, cost_settings.tag_key) \
            if (cost_settings.source == "data_export" if data_export is None else data_export) \
            else None
        #: Deploy the change-event rules and queue (docs/simulator.md, "Change events").
        self.change_events = change_events
        self.host = host
        self.port = port
        self.tick_s = tick_s
        self.history_hours = history_hours
        self.seed = seed
        self.region = config.aws.regions[0]
        self.scenario: list[ScenarioEvent] = load_scenario(scenario) if scenario else []
        self.started_at: datetime | None = None
        self.timings: dict[str, float] = {}
        self._server: GatedMotoServer | None = None
        self._admin: AdminSessions | None = None
        self._builder: Builder | None = None
        self._deployment: Deployment | None = None
        self._model: TrafficModel | None = None
        self._faults = Faults()
        self._trace_faults = TraceFaults()
        #: Schema discovery's registry, served by the gated server (sim/schemas_api.py).
        self.schemas = SchemaRegistry()
        self._rollouts = Rollouts()
        self._observed: set[tuple[str, str, tuple[int, ...]]] = set()
        #: Traced flows written so far (and how many broke the trace id at the bus).
        self.traced = FlowSegments()
        #: Accounts whose aws/spans log group exists (sim/emit.py put_span_events).
        self._span_groups: set[str] = set()
        self._cost_feed = CostFeed(config.organization.management_account_id,
                                   config.collector_settings("cost", CostCollectorConfig),
                                   cost_page_groups)
        self._cost_model: CostModel | None = None
        self._cost_spikes: list[CostSpike] = []
        self._restatements: list[Restatement] = []
        self._fired = 0
        self._last_minute: datetime | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise RuntimeError("the simulator is not started")
        return self._deployment

    def start(self) -> str:
        """Start the server, build the organization, back-fill history; return the endpoint."""
        clock = time.monotonic()
        guarded = (self.config.aws.read_role_name, self.config.heal.role_name)
        self._server = GatedMotoServer(guarded, host=self.host, port=self.port,
                                       schemas=self.schemas)
        self._server.start()
        endpoint = self.endpoint_url
        self._admin = AdminSessions(endpoint, self.region,
                                    max_pool=max(10, self.config.aws.max_workers * 2))
        self.timings["server_s"] = time.monotonic() - clock
        clock = time.monotonic()
        self._builder = Builder(self.config, self._admin)
        self._deployment = self._builder.build(change_events=self.change_events)
        self.timings["build_s"] = time.monotonic() - clock
        clock = time.monotonic()
        self._bind_costs()
        self.timings["costs_s"] = time.monotonic() - clock
        org = self.config.organization
        producers = {a.name: a.id for a in self.config.accounts}
        self._model = TrafficModel(STREAMS, producers,
                                   (org.central_bus_account_id, org.central_bus_name),
                                   self.region, self.seed)
        now = datetime.now(UTC)
        self.started_at = now
        self._start_discovery(floor_minute(now))
        clock = time.monotonic()
        self._backfill(floor_minute(now))
        self.timings["backfill_s"] = time.monotonic() - clock
        log.info("simulated %s at %s: server %.1fs, build %.1fs, %dh back-fill %.1fs",
                 org.name, endpoint, self.timings["server_s"], self.timings["build_s"],
                 self.history_hours, self.timings["backfill_s"])
        return endpoint

    def start_traffic(self) -> None:
        """tick() every ``tick_s`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.tick_s):
                try:
                    self.tick()
                except Exception:  # one bad tick must not end the world; it is logged
                    log.exception("simulator tick failed")

        self._thread = threading.Thread(target=loop, name="sim-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop traffic and the server; empty moto's (process-wide) state."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.tick_s))
            self._thread = None
        self._stop_server()

    # --- traffic ----------------------------------------------------------------------------

    def _accounts(self) -> list[str]:
        return [a.id for a in self.config.accounts]

    def read_world(self) -> World:
        return read_world(self.admin, self._accounts())

    def _backfill(self, until: datetime) -> None:
        minutes = self.history_hours * 60
        start = until - timedelta(minutes=minutes)
        self._last_minute = start - timedelta(minutes=1)
        if minutes <= 0:
            return
        self._simulate(self.read_world(), until, Faults(), TraceFaults())

    def _traced_services(self) -> dict[str, str]:
        """Service of the traced flow -> its account id (sim/tracing.py)."""
        ids = {a.name: a.id for a in self.config.accounts}
        return {service: ids[ACCOUNT_OF[service]] for service in SERVICES}

    def _traced_rule_delivers(self, world: World) -> bool:
        """Whether the central bus admits customer-web's Order Placed and the traced rule is
        enabled and matches it now (a disabled rule ends traced flows at the bus)."""
        assert self._model is not None
        central = world.bus(*self._model.central)
        if central is None:
            return False
        kind = next((k for k in self._model.kinds if k.event["detail-type"] == "Order Placed"
                     and k.event["detail"].get("paymentMethod") == "CREDIT_CARD"), None)
        rule = next((r for r in central.rules if r.name == TRACED_RULE), None)
        if kind is None or rule is None or rule.state != "ENABLED":
            return False
        return bus_admits(central, kind.producer, kind.event) and \
            self._model.matches_rule(rule, kind)

    def _start_discovery(self, now: datetime) -> None:
        """Discoverers on :data:`DISCOVERING_BUSES`, and the releases the history shipped."""
        org = self.config.organization
        ids = {a.name: a.id for a in self.config.accounts}
        for name, bus in DISCOVERING_BUSES:
            account = org.central_bus_account_id if name is None else ids.get(name)
            if account is not None:
                self.schemas.add_discoverer(account, self.region,
                                            bus or org.central_bus_name)
        self._rollouts = Rollouts(tuple(
            Rollout(SCHEMA_CHANGES[name], 1.0,
                    floor_minute(now - timedelta(hours=self.history_hours * share)))
            for name, share in HISTORY_CHANGES))

    def _discover(self, result: MinuteResult, minute: datetime) -> None:
        """Register the event shapes that reached a discovering bus this minute."""
        for (account, bus), events in result.arrivals.items():
            for key, event in events.items():
                if (account, bus, key) in self._observed:
                    continue
                self._observed.add((account, bus, key))
                version = self.schemas.observe(account, self.region, bus, event, minute)
                if version is not None:
                    log.info("schema discovery: %s %s@%s version %s in %s", bus,
                             event["source"], event["detail-type"], version, account)

    def add_rollout(self, change: str, share: float, start: datetime) -> Rollout:
        """A producer ships release ``change`` (sim/topology.py SCHEMA_CHANGES) to ``share``
        of its events from ``start`` on."""
        if change not in SCHEMA_CHANGES or not 0 < share <= 1:
            raise ValueError(f"schema change {change!r} at {share}: change must be one of "
                             f"{', '.join(SCHEMA_CHANGES)}, share in (0, 1]")
        rollout = Rollout(SCHEMA_CHANGES[change], share, start)
        with self._lock:
            self._rollouts = Rollouts((*self._rollouts.items, rollout))
        return rollout

    def _simulate(self, world: World, until: datetime, faults: Faults,
                  trace_faults: TraceFaults | None = None) -> MinuteResult:
        """Simulate and write every minute after the last one written, before ``until``."""
        assert self._model is not None and self._last_minute is not None
        earliest = until - timedelta(hours=max(1, self.history_hours))
        minute = max(self._last_minute + timedelta(minutes=1), earliest)
        results = []
        traced = FlowSegments()
        accounts = self._traced_services()
        delivers = self._traced_rule_delivers(world)
        while minute < until:
            results.append(self._model.minute(world, minute, faults, rollouts=self._rollouts))
            self._discover(results[-1], minute)
            minute_segments(minute, self.seed, accounts=accounts,
                            faults=trace_faults or TraceFaults(), delivered=delivers,
                            out=traced, otel=OTEL_SERVICES)
            self._last_minute = minute
            minute += timedelta(minutes=1)
        calls = put_metrics(self.admin, merge_metrics(results))
        put_segments(self.admin, documents_json(traced.documents), self.region)
        put_span_events(self.admin, traced.spans, self.region, self._span_groups)
        self.traced.flows += traced.flows
        self.traced.broken += traced.broken
        total = MinuteResult()
        for result in results:
            total.published += result.published
            total.matched += result.matched
            for arn, letters in result.dead_letters.items():
                merged = total.dead_letters.setdefault(arn, type(letters)(
                    letters.dlq_arn, letters.rule_arn, letters.target_arn))
                merged.count += letters.count
                merged.events.extend(letters.events)
        if total.dead_letters:
            send_dead_letters(self.admin, list(total.dead_letters.values()), until)
        log.debug("simulated %d minutes: %d events published, %d matched, %d metric calls",
                  len(results), total.published, total.matched, calls)
        return total

    def tick(self, now: datetime | None = None) -> None:
        """Fire due scenario entries, read the current state, simulate the minutes since the
        last tick (the minute containing ``now`` is left for the next tick) and write them."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        with self._lock:
            clock = time.monotonic()
            self._fire_scenario(now)
            if self._cost_model is None or self._cost_model.today != now.date():
                self._bind_costs(now.date())
            world = self.read_world()
            self._faults = self._faults.pruned(now - timedelta(hours=1))
            self._trace_faults = self._trace_faults.pruned(now - timedelta(hours=1))
            self._simulate(world, floor_minute(now), self._faults, self._trace_faults)
            self.timings["last_tick_s"] = time.monotonic() - clock

    # --- faults -----------------------------------------------------------------------------

    def _fire_scenario(self, now: datetime) -> None:
        assert self.started_at is not None
        while self._fired < len(self.scenario):
            event = self.scenario[self._fired]
            due = self.started_at + event.at
            if due > now:
                return
            log.info("scenario: %s", event.describe())
            self.apply(event, due)
            self._fired += 1

    def apply(self, event: ScenarioEvent, when: datetime) -> None:
        """Carry out one scenario entry (state changes through the API, or a traffic fault)."""
        p = event.params
        if event.action in ("disable_rule", "enable_rule"):
            state_faults.set_rule_state(self.admin, p["account"], p["bus"], p["rule"],
                                        enabled=event.action == "enable_rule")
        elif event.action == "break_pattern":
            state_faults.break_pattern(self.admin, p["account"], p["bus"], p["rule"])
        elif event.action == "remove_bus_permission":
            state_faults.remove_bus_permission(self.admin, p["account"], p["bus"],
                                               p["principal"])
        elif event.action == "break_account":
            self.break_account(p["account"], p["how"])
        elif event.action == "repair_account":
            self.repair_account(p["account"])
        elif event.action == "cost_spike":
            self.add_cost_spike(p["account"], p["service"], p["usage_type"],
                                factor=float(p["factor"]), days=int(p["days"]),
                                until=when.date())
        elif event.action == "schema_version":
            self.add_rollout(p["change"], float(p["share"]), floor_minute(when))
        elif event.action in ("latency_spike", "error_burst"):
            start = floor_minute(when)
            value = float(p["ms"] if event.action == "latency_spike" else p["rate"])
            self.add_trace_fault(event.action, p["service"], value, start,
                                 start + duration_of(event))
        else:
            value = float(p["ms"] if event.action == "latency" else p["rate"])
            start = floor_minute(when)
            fault = Fault(event.action, p["account"], p["bus"], p["rule"], value, start,
                          start + duration_of(event))
            self._faults = Faults((*self._faults.items, fault))

    def add_trace_fault(self, kind: str, service: str, value: float, start: datetime,
                        end: datetime) -> TraceFault:
        """A latency spike (``value`` ms) or error burst (``value`` share of calls) in one
        traced service (sim/tracing.py SERVICES) for [start, end)."""
        if kind not in ("latency_spike", "error_burst") or service not in SERVICES:
            raise ValueError(f"trace fault {kind!r} on {service!r}: kind must be latency_spike "
                             f"or error_burst, service one of {', '.join(SERVICES)}")
        fault = TraceFault(kind, service, value, start, end)
        with self._lock:
            self._trace_faults = TraceFaults((*self._trace_faults.items, fault))
        return fault

    # --- cost -------------------------------------------------------------------------------

    @property
    def cost_model(self) -> CostModel:
        """The bill Cost Explorer is serving now (the truth tests compare with)."""
        if self._cost_model is None:
            raise RuntimeError("the simulator is not started")
        return self._cost_model

    @property
    def cost_pages(self) -> dict[date, int]:
        """GetCostAndUsage pages bound per read-window start (requests of one collector run)."""
        return dict(self._cost_feed.pages)

    def _bind_costs(self, today: date | None = None) -> None:
        with self._lock:
            today = today or datetime.now(UTC).date()
            model = CostModel.reference(
                self.config.accounts, today, self.seed,
                spikes=(*default_spikes(today), *self._cost_spikes),
                restatements=self._restatements)
            self._cost_feed.bind(model)
            self._cost_model = model
            if self.data_export is not None:
                self._write_export(model)

    def _write_export(self, model: CostModel) -> None:
        """The model as the management account's FOCUS export, split over the topology's
        rules, buses and queues."""
        assert self.data_export is not None
        deployment = self.deployment
        resources = topology_resources(deployment.rules, sorted(deployment.dlq_urls),
                                       self.region)
        management = self.config.organization.management_account_id
        self.data_export.write(self.admin.client(management, "s3"), model, resources)

    def add_cost_spike(self, account_id: str, service: str, usage_type: str, *,
                       factor: float, days: int, until: date | None = None) -> CostSpike:
        """One line of one account costs ``factor`` times normal for the ``days`` days ending
        ``until`` (today); Cost Explorer answers with it from now on."""
        until = until or datetime.now(UTC).date()
        spike = CostSpike(account_id, service, usage_type, until - timedelta(days=days - 1),
                          days, factor)
        self._cost_spikes.append(spike)
        self._bind_costs()
        log.info("cost spike: %s %s %s x%g for %d days to %s", account_id, service,
                 usage_type, factor, days, until)
        return spike

    def restate_cost(self, day: date, account_id: str, service: str, usage_type: str,
                     factor: float) -> Restatement:
        """AWS corrects one line of one account on one day (its amount times ``factor``)."""
        restated = Restatement(day, account_id, service, usage_type, factor)
        self._restatements.append(restated)
        self._bind_costs()
        log.info("cost restated: %s %s %s %s x%g", day, account_id, service, usage_type, factor)
        return restated

    def break_account(self, account_id: str, how: BreakHow = "missing-role") -> None:
        """Make orgscope's read role unusable in one account, through the IAM API."""
        builder = self._require_builder()
        if how == "missing-role":
            builder.delete_read_role(account_id)
        elif how == "no-permissions":
            builder.strip_read_role(account_id)
        else:
            raise ValueError(f"how must be 'missing-role' or 'no-permissions', not {how!r}")
        log.info("account %s broken: %s", account_id, how)

    def withhold_actions(self, account_id: str, actions: Sequence[str]) -> None:
        """Leave ``actions`` out of the read role's policy in one account (an older role that
        predates the collector needing them); :meth:`repair_account` restores them."""
        unknown = set(actions) - set(self._require_builder().read_actions)
        if unknown:
            raise ValueError(f"not actions of the read role: {sorted(unknown)}")
        self._require_builder().ensure_read_role(account_id, without=actions)
        log.info("account %s: read role without %s", account_id, ", ".join(actions))

    def repair_account(self, account_id: str) -> None:
        """Recreate the read role and its policy."""
        self._require_builder().ensure_read_role(account_id)
        log.info("account %s repaired", account_id)

    def _require_builder(self) -> Builder:
        if self._builder is None:
            raise RuntimeError("the simulator is not started")
        return self._builder
