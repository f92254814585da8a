"""The alert lifecycle: pending -> firing -> resolved, as a pure function of the stored state.

:func:`advance` takes the latest stored row of every alert key it may touch, what the rules
found now and the active silences, and returns the rows to store, the transitions for
``alert_events`` and the notices to send. docs/alerts.md, "Lifecycle" and "Silences", explains
each transition. Invariants:

* Everything it needs is stored, so a restart picks up where the last evaluation stopped: an
  alert fires once, repeats only after ``repeat_interval``, and resolves once.
* A pending alert whose condition goes resolves quietly; a ``resolved`` message is sent only
  if the firing one was.
* A held key (its input could not be read, or its rule is STALE) does not change.
* A silenced alert moves through the same states (with ``silenced_by``) but sends no message;
  when the silence ends while it still fires, the firing message follows then.
* Every notice carries the ``updated_at`` of the row it was derived from, so evaluating again
  after a crash (before the new rows were stored) derives the same notice ids: the outbox
  refuses the duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from alerts.rule import Condition, Evaluation
from alerts.rules import RULES_BY_NAME
from alerts.silences import Silence, silenced_by

LABEL_COLUMNS: tuple[str, ...] = ("account_id", "account_name", "region", "team", "bus", "rule",
                                  "service")


@dataclass(frozen=True)
class AlertState:
    """One row of the ``alerts`` dataset."""

    key: str
    alert_name: str
    severity: str
    state: str
    account_id: str | None
    account_name: str | None
    region: str | None
    team: str | None
    bus: str | None
    rule: str | None
    service: str | None
    summary: str
    details: str
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    last_notified_at: datetime | None
    updated_at: datetime
    silenced_by: str | None

    @property
    def labels(self) -> dict[str, str | None]:
        labels: dict[str, str | None] = {name: getattr(self, name) for name in LABEL_COLUMNS}
        return {"key": self.key, "alert_name": self.alert_name, "severity": self.severity,
                **labels}

    @property
    def open(self) -> bool:
        return self.state != "resolved"

    def notified_this_episode(self) -> bool:
        """Whether a firing message of the current episode was sent."""
        return self.last_notified_at is not None and self.fired_at is not None and \
            self.last_notified_at >= self.fired_at

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Notice:
    """A message to send about one alert. ``basis``: the ``updated_at`` of the stored row the
    transition started from (None for a key never seen), which makes its id repeatable."""

    kind: str
    alert: AlertState
    basis: datetime | None

    @property
    def identity(self) -> str:
        return f"{self.alert.key}|{self.kind}|{self.basis.isoformat() if self.basis else 'new'}"


@dataclass(frozen=True)
class Event:
    """One row of ``alert_events``."""

    key: str
    state: str
    at: datetime
    summary: str


@dataclass(frozen=True)
class Advance:
    """What one evaluation changes: rows to store, transitions, messages to send."""

    states: list[AlertState]
    events: list[Event]
    notices: list[Notice]


def _new_state(condition: Condition, now: datetime) -> AlertState:
    labels = condition.labels
    return AlertState(
        key=condition.key, alert_name=condition.alert_name, severity=condition.severity,
        state="pending", **{name: labels.get(name) for name in LABEL_COLUMNS},
        summary=condition.summary,
        details=json.dumps(dict(condition.details), sort_keys=True, default=str),
        started_at=now, fired_at=None, resolved_at=None, last_notified_at=None,
        updated_at=now, silenced_by=None)


def _refreshed(state: AlertState, condition: Condition) -> AlertState:
    """``state`` with the condition's latest summary, numbers, severity and labels."""
    labels = condition.labels
    refreshed = replace(state, severity=condition.severity, summary=condition.summary,
                        details=json.dumps(dict(condition.details), sort_keys=True,
                                           default=str))
    changes: dict[str, Any] = {name: labels.get(name) for name in LABEL_COLUMNS}
    return replace(refreshed, **changes)


def _changed(before: AlertState | None, after: AlertState) -> bool:
    if before is None:
        return True
    watched = ("state", "severity", "summary", "silenced_by", "last_notified_at", "fired_at",
               "resolved_at", "started_at")
    return any(getattr(before, name) != getattr(after, name) for name in watched)


def _silences_text(silences: Sequence[Silence], state: AlertState, now: datetime) -> str | None:
    ids = silenced_by(silences, state.labels, now)
    return ",".join(ids) if ids else None


def advance(previous: Mapping[str, AlertState], evaluation: Evaluation,
            silences: Sequence[Silence], now: datetime,
            repeat_interval: timedelta) -> Advance:
    """One evaluation of the lifecycle (see the module docstring).

    ``previous``: the latest stored row of each open alert and of each key the conditions
    name (resolved ones included: their ``updated_at`` makes a new episode's notice id).
    """
    conditions = {c.key: c for c in evaluation.conditions}
    keys: Iterable[str] = sorted(set(conditions) | {k for k, s in previous.items() if s.open})
    states: list[AlertState] = []
    events: list[Event] = []
    notices: list[Notice] = []
    for key in keys:
        before = previous.get(key)
        condition = conditions.get(key)
        if evaluation.is_held(key) and (before is None or not before.open):
            continue  # nothing known, nothing open: start nothing
        if evaluation.is_held(key):
            assert before is not None
            after = replace(before, silenced_by=_silences_text(silences, before, now))
            if _changed(before, after):
                states.append(replace(after, updated_at=now))
            continue
        basis = before.updated_at if before is not None else None
        if condition is not None:
            after = _while_true(before, condition, now, events)
        else:
            assert before is not None and before.open
            after = replace(before, state="resolved", resolved_at=now)
            events.append(Event(key, "resolved", now, before.summary))
        after = replace(after, silenced_by=_silences_text(silences, after, now))
        after, kind = _notify(before, after, now, repeat_interval)
        if kind is not None:
            notices.append(Notice(kind, replace(after, updated_at=now), basis))
        if _changed(before, after):
            states.append(replace(after, updated_at=now))
    return Advance(states=states, events=events, notices=notices)


def _while_true(before: AlertState | None, condition: Condition, now: datetime,
                events: list[Event]) -> AlertState:
    if before is None or not before.open:
        state = _new_state(condition, now)
        if condition.for_ <= timedelta(0):
            state = replace(state, state="firing", fired_at=now)
        events.append(Event(state.key, state.state, now, state.summary))
        return state
    state = _refreshed(before, condition)
    if state.state == "pending" and now - state.started_at >= condition.for_:
        state = replace(state, state="firing", fired_at=now)
        events.append(Event(state.key, "firing", now, state.summary))
    return state


def _notify(before: AlertState | None, after: AlertState, now: datetime,
            repeat_interval: timedelta) -> tuple[AlertState, str | None]:
    """(the state with ``last_notified_at`` set when a message goes out, the message kind)."""
    kind: str | None = None
    if after.silenced_by is not None:
        kind = None
    elif after.state == "resolved":
        told = before is not None and before.state == "firing" and \
            before.notified_this_episode()
        kind = "resolved" if told else None
    elif after.state == "firing" and not after.notified_this_episode():
        rule = RULES_BY_NAME.get(after.alert_name)
        kind = "page" if rule is not None and rule.pages_on_call else "firing"
    elif after.state == "firing" and after.last_notified_at is not None and \
            now - after.last_notified_at >= repeat_interval:
        kind = "repeat"
    if kind is None:
        return after, None
    return replace(after, last_notified_at=now), kind
