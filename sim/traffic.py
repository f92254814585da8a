"""The traffic model: pure functions from (world, minute, faults) to what AWS would emit.

For each minute, every producer stream publishes a number of events following a daily shape
(quiet at night, peaks at lunch and dinner time, in UTC) with seeded noise: the same seed and
minute always give the same counts, whatever the tick schedule. Events that the central bus
policy admits are matched against the *current* rules of the bus (a DISABLED rule matches
nothing; a pattern that no event satisfies goes silent), delivered to each target (an event
bus target delivers onward, recursively) and counted into AWS/Events metrics with AWS's names
and dimensions, in the account that owns the rule. Count metrics are omitted when zero, as
AWS emits them only with activity.

Faults in effect (:class:`Faults`) add target errors (failed attempts, retries per the target's
RetryPolicy, then the DLQ), throttling and extra latency.

Schema rollouts in effect (:class:`Rollouts`) make a share of a stream's events take the shape
of a producer's newer release (:class:`sim.topology.SchemaChange`): a canary first, the whole
stream later. Such events are matched as sent, so a rule testing a field the release moved
stops matching them; each minute's result lists the event shapes that reached every bus
(``arrivals``), which the simulator's schema discovery registers (:mod:`sim.discovery`).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sim.patterns import UnsupportedPattern, matches, parse_pattern
from sim.state import Bus, Rule, Target, World
from sim.topology import SchemaChange, Stream, apply_change

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Events"
#: How many attempts per failing event we model within the minute (RetryPolicy caps it).
MAX_MODELLED_RETRIES = 3
#: How many bus-to-bus hops an event may take (AWS allows one cross-account hop; we allow 3).
MAX_HOPS = 3
#: Average entries per PutEvents call a producer makes.
ENTRIES_PER_CALL = 4
BASE_LATENCY_MS = 90.0


# --- the daily shape -------------------------------------------------------------------------


def daily_shape(moment: datetime) -> float:
    """Relative traffic (0.12 .. ~1.0) at ``moment``: night lull, lunch and dinner peaks."""
    hour = moment.hour + moment.minute / 60.0
    lunch = math.exp(-((hour - 12.5) ** 2) / (2 * 1.6**2))
    dinner = math.exp(-((hour - 18.5) ** 2) / (2 * 1.8**2))
    return 0.12 + 0.55 * lunch + 0.88 * dinner * (1.0 - 0.3 * lunch)


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("|".join([str(seed), *map(str, parts)]))  # noqa: S311 - not crypto


def minute_key(minute: datetime) -> int:
    return int(minute.timestamp()) // 60


def stream_counts(stream: Stream, minute: datetime, seed: int) -> list[int]:
    """Events of each variant ``stream`` publishes in ``minute`` (deterministic per seed)."""
    rng = _rng(seed, stream.account, stream.source, stream.detail_type, minute_key(minute))
    expected = stream.peak_per_min * daily_shape(minute) * rng.lognormvariate(0.0, 0.12)
    total = max(0, round(rng.gauss(expected, math.sqrt(expected))))
    counts = [0] * len(stream.variants)
    weights = [v.weight for v in stream.variants]
    for index in rng.choices(range(len(counts)), weights=weights, k=total):
        counts[index] += 1
    return counts


# --- faults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A scenario fault on one rule for [start, end): ``kind`` is target_errors, throttle or
    latency; ``value`` the error/throttle rate (0-1) or the extra latency in ms."""

    kind: str
    account: str
    bus: str
    rule: str
    value: float
    start: datetime
    end: datetime

    def active(self, minute: datetime) -> bool:
        return self.start <= minute < self.end


@dataclass(frozen=True)
class Faults:
    items: tuple[Fault, ...] = ()

    def value(self, kind: str, rule: Rule, minute: datetime) -> float:
        return max(
            (f.value for f in self.items if f.kind == kind and f.account == rule.account
             and f.bus == rule.bus and f.rule == rule.name and f.active(minute)),
            default=0.0,
        )

    def pruned(self, now: datetime) -> Faults:
        return Faults(tuple(f for f in self.items if f.end > now))


@dataclass(frozen=True)
class Rollout:
    """A producer's release carrying ``change`` sends ``share`` (0-1] of its events from
    ``start`` on (a later rollout of the same change replaces the share)."""

    change: SchemaChange
    share: float
    start: datetime


@dataclass(frozen=True)
class Rollouts:
    items: tuple[Rollout, ...] = ()

    def active(self, stream: Stream, minute: datetime) -> list[tuple[SchemaChange, float]]:
        """The changes of ``stream`` shipped by ``minute``, in the order first shipped, each
        with its current share (a later change never runs on more events than an earlier)."""
        shares: dict[str, tuple[SchemaChange, float]] = {}
        for rollout in sorted(self.items, key=lambda r: r.start):
            change = rollout.change
            if rollout.start <= minute and change.account == stream.account \
                    and change.detail_type == stream.detail_type:
                shares[change.name] = (change, rollout.share)
        found: list[tuple[SchemaChange, float]] = []
        ceiling = 1.0
        for change, share in shares.values():
            ceiling = min(ceiling, share)
            found.append((change, ceiling))
        return found


def release_levels(n: int, shares: Sequence[float], rng: random.Random) -> list[int]:
    """How many of ``n`` events carry exactly the first 0, 1, ... len(shares) changes, when
    change k runs on ``shares[k]`` of the events (non-increasing)."""
    counts = [0] * (len(shares) + 1)
    for _ in range(n):
        draw = rng.random()
        counts[sum(1 for share in shares if draw < share)] += 1
    return counts


# --- bus policies ----------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _principal_matches(principal: Any, account: str) -> bool:
    if principal == "*":
        return True
    values = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
    return any(v in (account, f"arn:aws:iam::{account}:root") for v in values)


def _conditions_hold(condition: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    equals = condition.get("StringEquals") or {}
    for key, field_name in (("events:detail-type", "detail-type"), ("events:source", "source")):
        if key in equals and event.get(field_name) not in _as_list(equals[key]):
            return False
    return True


def bus_admits(bus: Bus, sender: str, event: Mapping[str, Any]) -> bool:
    """Whether ``bus``'s resource policy lets account ``sender`` put ``event`` on it.

    The owner always may. Otherwise an Allow statement for events:PutEvents must name the
    sender (account id or root ARN, or ``*``) and its StringEquals conditions on
    events:detail-type / events:source must hold; a matching Deny wins.
    """
    if sender == bus.account:
        return True
    if not bus.policy:
        return False
    try:
        document = json.loads(bus.policy)
    except ValueError:
        return False
    allowed = False
    for statement in _as_list(document.get("Statement")):
        actions = _as_list(statement.get("Action"))
        if not any(a in ("events:PutEvents", "events:*", "*") for a in actions):
            continue
        if not _principal_matches(statement.get("Principal"), sender):
            continue
        if not _conditions_hold(statement.get("Condition") or {}, event):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


# --- one minute ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventKind:
    """One (stream, variant): the unit the model counts and matches."""

    key: tuple[int, ...]
    producer: str
    event: dict[str, Any]


@dataclass
class DeadLetters:
    """Events a target gave up on, for one DLQ."""

    dlq_arn: str
    rule_arn: str
    target_arn: str
    events: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


@dataclass
class MinuteResult:
    """What one minute emits: metric data per account and dead letters per DLQ."""

    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: dict[str, DeadLetters] = field(default_factory=dict)
    published: int = 0
    matched: int = 0
    #: (bus account, bus name) -> {event kind key: event} of the events that reached it.
    arrivals: dict[tuple[str, str], dict[tuple[int, ...], dict[str, Any]]] = field(
        default_factory=dict)


def event_kinds(streams: Sequence[Stream], producers: Mapping[str, str], region: str
                ) -> list[EventKind]:
    """Every (stream, variant) as an event envelope; streams of unknown accounts are skipped."""
    kinds = []
    for s_index, stream in enumerate(streams):
        producer = producers.get(stream.account)
        if producer is None:
            continue
        for v_index, variant in enumerate(stream.variants):
            event = {"version": "0", "source": stream.source, "detail-type": stream.detail_type,
                     "account": producer, "region": region, "resources": [],
                     "detail": variant.detail}
            kinds.append(EventKind((s_index, v_index), producer, event))
    return kinds


def dimensions(rule: Rule) -> list[dict[str, str]]:
    if rule.bus == "default":
        return [{"Name": "RuleName", "Value": rule.name}]
    return [{"Name": "EventBusName", "Value": rule.bus}, {"Name": "RuleName", "Value": rule.name}]


def count_datum(name: str, value: int, dims: list[dict[str, str]], minute: datetime
                ) -> dict[str, Any] | None:
    """A PutMetricData datum of a count metric, or None for zero (AWS omits zero counts)."""
    if value <= 0:
        return None
    return {"MetricName": name, "Dimensions": dims, "Timestamp": minute, "Value": float(value),
            "Unit": "Count"}


def latency_datum(dims: list[dict[str, str]], minute: datetime, count: int,
                  latency_ms: float) -> dict[str, Any]:
    """The IngestionToInvocationStartLatency statistic set of ``count`` invocations around
    ``latency_ms`` (minimum 0.4x, maximum 2.5x)."""
    return {
        "MetricName": "IngestionToInvocationStartLatency", "Dimensions": dims,
        "Timestamp": minute, "Unit": "Milliseconds",
        "StatisticValues": {"SampleCount": float(count), "Sum": round(latency_ms * count, 1),
                            "Minimum": round(latency_ms * 0.4, 1),
                            "Maximum": round(latency_ms * 2.5, 1)},
    }


def _bus_of_target(target: Target) -> tuple[str, str] | None:
    """'arn:aws:events:us-east-1:111111111111:event-bus/name' -> (account, name)."""
    parts = target.arn.split(":")
    if len(parts) == 6 and parts[2] == "events" and parts[5].startswith("event-bus/"):
        return parts[4], parts[5].removeprefix("event-bus/")
    return None


class TrafficModel:
    """Turns minutes into metrics; caches pattern matches per (pattern text, event kind)."""

    def __init__(self, streams: Sequence[Stream], producers: Mapping[str, str],
                 central: tuple[str, str], region: str, seed: int) -> None:
        self.streams = tuple(streams)
        self.kinds = event_kinds(streams, producers, region)
        self.central = central
        self.region = region
        self.seed = seed
        self._match_cache: dict[tuple[str, tuple[int, ...]], bool] = {}
        self._released: dict[tuple[tuple[int, ...], tuple[str, ...]], EventKind] = {}
        self._warned: set[str] = set()

    def matches_rule(self, rule: Rule, kind: EventKind) -> bool:
        """Whether ``rule``'s current pattern matches ``kind`` (cached)."""
        return self._matches(rule, kind)

    def _matches(self, rule: Rule, kind: EventKind) -> bool:
        if rule.pattern is None:
            return False
        cache_key = (rule.pattern, kind.key)
        cached = self._match_cache.get(cache_key)
        if cached is None:
            try:
                cached = matches(parse_pattern(rule.pattern), kind.event)
            except UnsupportedPattern as error:
                if rule.pattern not in self._warned:
                    self._warned.add(rule.pattern)
                    log.warning("rule %s in %s: pattern not simulated, matches nothing: %s",
                                rule.name, rule.account, error)
                cached = False
            self._match_cache[cache_key] = cached
        return cached

    def _release(self, kind: EventKind, changes: Sequence[SchemaChange]) -> EventKind:
        """``kind`` as sent by the release carrying ``changes`` (cached; its key says which)."""
        names = tuple(change.name for change in changes)
        cached = self._released.get((kind.key, names))
        if cached is None:
            detail = kind.event["detail"]
            for change in changes:
                detail = apply_change(detail, change)
            cached = EventKind((*kind.key, len(changes)), kind.producer,
                               {**kind.event, "detail": detail})
            self._released[(kind.key, names)] = cached
        return cached

    def _released_kinds(self, kind: EventKind, n: int, minute: datetime,
                        rollouts: Rollouts) -> list[tuple[EventKind, int]]:
        changes = rollouts.active(self.streams[kind.key[0]], minute) if rollouts.items else []
        if not changes:
            return [(kind, n)]
        rng = _rng(self.seed, "rollout", *kind.key, minute_key(minute))
        levels = release_levels(n, [share for _, share in changes], rng)
        return [(self._release(kind, [c for c, _ in changes[:level]]) if level else kind, count)
                for level, count in enumerate(levels) if count]

    def minute(self, world: World, minute: datetime, faults: Faults = Faults(),
               result: MinuteResult | None = None, rollouts: Rollouts = Rollouts()
               ) -> MinuteResult:
        """Simulate ``minute`` (aligned to the minute) against ``world``."""
        result = result if result is not None else MinuteResult()
        counts: dict[tuple[int, ...], int] = {}
        for s_index, stream in enumerate(self.streams):
            for v_index, n in enumerate(stream_counts(stream, minute, self.seed)):
                if n:
                    counts[(s_index, v_index)] = n
        central = world.bus(*self.central)
        by_producer: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        arriving: list[tuple[EventKind, int]] = []
        for kind in self.kinds:
            n = counts.get(kind.key, 0)
            if not n:
                continue
            admitted = central is not None and bus_admits(central, kind.producer, kind.event)
            by_producer[kind.producer][0 if admitted else 1] += n
            if admitted:
                arriving += self._released_kinds(kind, n, minute, rollouts)
        for producer, (ok, failed) in by_producer.items():
            self._put_events_metrics(result, producer, ok, failed, minute)
            result.published += ok
        if central is not None:
            self._deliver(_Step(world, minute, faults, result), central, arriving, hop=0)
        return result

    def _put_events_metrics(self, result: MinuteResult, producer: str, ok: int, failed: int,
                            minute: datetime) -> None:
        ok_calls = math.ceil(ok / ENTRIES_PER_CALL)
        failed_calls = math.ceil(failed / ENTRIES_PER_CALL)
        for name, value in (
            ("PutEventsApproximateCallCount", ok_calls + failed_calls),
            ("PutEventsApproximateSuccessCount", ok_calls),
            ("PutEventsApproximateFailedCount", failed_calls),
            ("PutEventsEntriesCount", ok + failed),
            ("PutEventsFailedEntriesCount", failed),
        ):
            datum = count_datum(name, value, [], minute)
            if datum:
                result.metrics[producer].append(datum)

    def _deliver(self, step: _Step, bus: Bus, arriving: list[tuple[EventKind, int]],
                 hop: int) -> None:
        seen = step.result.arrivals.setdefault((bus.account, bus.name), {})
        for kind, _ in arriving:
            seen.setdefault(kind.key, kind.event)
        for rule in bus.rules:
            if rule.state != "ENABLED":
                continue
            matched = [(kind, n) for kind, n in arriving if self._matches(rule, kind)]
            total = sum(n for _, n in matched)
            if not total:
                continue
            step.result.matched += total
            out = step.result.metrics[rule.account]
            for name in ("MatchedEvents", "TriggeredRules"):
                out.append(count_datum(name, total, dimensions(rule), step.minute))  # type: ignore[arg-type]
            for target in rule.targets:
                self._invoke(step, rule, target, matched, hop)

    def _invoke(self, step: _Step, rule: Rule, target: Target,
                matched: list[tuple[EventKind, int]], hop: int) -> None:
        minute, faults = step.minute, step.faults
        total = sum(n for _, n in matched)
        rng = _rng(self.seed, rule.account, rule.bus, rule.name, target.id, minute_key(minute))
        error_rate = faults.value("target_errors", rule, minute)
        onward = _bus_of_target(target)
        next_bus = step.world.bus(*onward) if onward else None
        if onward and (next_bus is None or not all(
                bus_admits(next_bus, rule.account, kind.event) for kind, _ in matched)):
            error_rate = 1.0  # the receiving bus is gone or its policy refuses us
        retries_allowed = min(target.retry_attempts, MAX_MODELLED_RETRIES)
        delivered: list[tuple[EventKind, int]] = []
        dead: list[tuple[EventKind, int]] = []
        retries = 0
        for kind, n in matched:
            failing = _binomial(rng, n, error_rate)
            for _ in range(retries_allowed):
                if not failing:
                    break
                retries += failing
                failing = _binomial(rng, failing, error_rate)
            if n - failing:
                delivered.append((kind, n - failing))
            if failing:
                dead.append((kind, failing))
        failed = sum(n for _, n in dead)
        throttled = _binomial(rng, total, faults.value("throttle", rule, minute))
        dims = dimensions(rule)
        out = step.result.metrics[rule.account]
        for name, value in (
            ("Invocations", total),
            ("FailedInvocations", failed),
            ("ThrottledRules", throttled),
            ("InvocationAttempts", total + retries),
            ("SuccessfulInvocationAttempts", total - failed),
            ("RetryInvocationAttempts", retries),
            ("InvocationsSentToDlq", failed if target.dlq_arn else 0),
        ):
            datum = count_datum(name, value, dims, minute)
            if datum:
                out.append(datum)
        latency = (BASE_LATENCY_MS * (1 + hop) * rng.lognormvariate(0.0, 0.25)
                   + faults.value("latency", rule, minute)
                   + (2000.0 * throttled / total))
        out.append(latency_datum(dims, minute, total, latency))
        if failed and target.dlq_arn:
            letters = step.result.dead_letters.setdefault(
                target.dlq_arn, DeadLetters(target.dlq_arn, rule.arn(self.region), target.arn))
            letters.count += failed
            letters.events.extend(kind.event for kind, n in dead for _ in range(n))
        if next_bus is not None and delivered and hop + 1 < MAX_HOPS:
            self._deliver(step, next_bus, delivered, hop + 1)


@dataclass(frozen=True)
class _Step:
    """What every delivery within one simulated minute shares."""

    world: World
    minute: datetime
    faults: Faults
    result: MinuteResult


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if p <= 0.0 or n <= 0:
        return 0
    if p >= 1.0:
        return n
    return sum(1 for _ in range(n) if rng.random() < p)


def merge_metrics(results: Iterable[MinuteResult]) -> dict[str, list[dict[str, Any]]]:
    merged: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        for account, data in result.metrics.items():
            merged[account].extend(data)
    return merged
