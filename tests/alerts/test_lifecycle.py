"""The alert state machine: pending -> firing -> resolved, once each, repeats, silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.lifecycle import AlertState, advance
from alerts.rule import Condition, Evaluation
from alerts.silences import Silence

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)
LABELS = {"account_id": "777777777777", "account_name": "order-processing",
          "region": "us-east-1", "team": "orders", "bus": "central-bus",
          "rule": "order-placed", "service": None}


def condition(for_: timedelta = timedelta(0), name: str = "rule_disabled",
              summary: str = "rule order-placed is DISABLED") -> Condition:
    return Condition(alert_name=name, severity="critical", for_=for_,
                     labels={"alert_name": name, "severity": "critical", **LABELS},
                     identity=("account_id", "region", "bus", "rule"), summary=summary)


class Machine:
    """Runs advance() over time, keeping the stored rows as the step would."""

    def __init__(self) -> None:
        self.stored: dict[str, AlertState] = {}
        self.kinds: list[str] = []
        self.states: list[str] = []

    def step(self, at: datetime, *conditions: Condition, silences: list[Silence] | None = None,
             held: frozenset[str] = frozenset()) -> list[str]:
        result = advance(self.stored, Evaluation(list(conditions), held), silences or [], at,
                         REPEAT)
        for state in result.states:
            self.stored[state.key] = state
        self.states += [e.state for e in result.events]
        kinds = [n.kind for n in result.notices]
        self.kinds += kinds
        return kinds


def test_fires_at_once_notifies_once_and_resolves_once() -> None:
    machine = Machine()
    key = condition().key
    assert key == "rule_disabled/777777777777/us-east-1/central-bus/order-placed"
    assert machine.step(T0, condition()) == ["firing"]
    for minutes in (5, 10, 60, 119):
        assert machine.step(T0 + timedelta(minutes=minutes), condition()) == []
    assert machine.step(T0 + timedelta(hours=2)) == ["resolved"]
    assert machine.step(T0 + timedelta(hours=2, minutes=5)) == []
    assert machine.states == ["firing", "resolved"]
    row = machine.stored[key]
    assert row.state == "resolved" and row.fired_at == T0
    assert row.resolved_at == T0 + timedelta(hours=2)


def test_pending_until_for_has_passed_then_fires() -> None:
    machine = Machine()
    silent = condition(timedelta(minutes=10), "rule_silent", "matched 0 events")
    assert machine.step(T0, silent) == []
    assert machine.stored[silent.key].state == "pending"
    assert machine.step(T0 + timedelta(minutes=5), silent) == []
    assert machine.step(T0 + timedelta(minutes=10), silent) == ["firing"]
    assert machine.states == ["pending", "firing"]
    assert machine.stored[silent.key].started_at == T0


def test_pending_that_clears_resolves_without_a_message() -> None:
    machine = Machine()
    silent = condition(timedelta(minutes=10), "rule_silent")
    machine.step(T0, silent)
    assert machine.step(T0 + timedelta(minutes=5)) == []
    assert machine.states == ["pending", "resolved"]


def test_repeats_only_after_the_repeat_interval() -> None:
    machine = Machine()
    machine.step(T0, condition())
    assert machine.step(T0 + REPEAT - timedelta(minutes=1), condition()) == []
    assert machine.step(T0 + REPEAT, condition()) == ["repeat"]
    assert machine.step(T0 + REPEAT + timedelta(minutes=5), condition()) == []
    assert machine.step(T0 + 2 * REPEAT, condition()) == ["repeat"]


def test_a_new_episode_after_resolution_fires_again_with_a_new_notice_id() -> None:
    machine = Machine()
    first = advance({}, Evaluation([condition()]), [], T0, REPEAT)
    machine.step(T0, condition())
    machine.step(T0 + timedelta(minutes=5))
    result = advance(machine.stored, Evaluation([condition()]), [], T0 + timedelta(minutes=10),
                     REPEAT)
    assert [n.kind for n in result.notices] == ["firing"]
    assert result.notices[0].identity != first.notices[0].identity
    assert result.states[0].started_at == T0 + timedelta(minutes=10)


def test_same_stored_state_gives_the_same_notice_identity() -> None:
    """A crash after queueing and before storing the state: evaluating again derives the
    same notice, which the outbox then refuses."""
    machine = Machine()
    machine.step(T0, condition())
    again = [advance(machine.stored, Evaluation([]), [], T0 + timedelta(minutes=m), REPEAT)
             for m in (5, 6)]
    assert [n.identity for n in again[0].notices] == [n.identity for n in again[1].notices]


def _silence(ends: datetime) -> Silence:
    return Silence(id="sil-1", matchers={"team": "orders"}, starts_at=T0, ends_at=ends,
                   created_by="ana", comment="deploy", created_at=T0, expired_at=None,
                   source="dashboard")


def test_silenced_alert_stays_visible_and_fires_when_the_silence_ends() -> None:
    machine = Machine()
    silence = _silence(T0 + timedelta(minutes=30))
    assert machine.step(T0, condition(), silences=[silence]) == []
    row = machine.stored[condition().key]
    assert row.state == "firing" and row.silenced_by == "sil-1"
    assert machine.step(T0 + timedelta(minutes=10), condition(), silences=[silence]) == []
    assert machine.step(T0 + timedelta(minutes=30), condition(), silences=[silence]) == \
        ["firing"]
    assert machine.stored[condition().key].silenced_by is None


def test_silenced_resolution_sends_nothing_and_unsent_firing_resolves_quietly() -> None:
    machine = Machine()
    silence = _silence(T0 + timedelta(days=1))
    machine.step(T0, condition(), silences=[silence])
    assert machine.step(T0 + timedelta(minutes=5), silences=[silence]) == []
    assert machine.stored[condition().key].state == "resolved"
    assert machine.kinds == []


def test_held_alerts_keep_their_state() -> None:
    machine = Machine()
    machine.step(T0, condition())
    key = condition().key
    prefix = key  # the rule's STALE verdict holds its alerts
    assert machine.step(T0 + timedelta(minutes=5), held=frozenset({prefix})) == []
    assert machine.stored[key].state == "firing"
    # and a held source starts nothing new
    result = advance({}, Evaluation([condition()], frozenset({"rule_disabled"})), [], T0,
                     REPEAT)
    assert result.states == [] and result.notices == []


def test_pages_are_notified_as_pages() -> None:
    machine = Machine()
    page = Condition(alert_name="heal_maintenance", severity="critical", for_=timedelta(0),
                     labels={"alert_name": "heal_maintenance"}, identity=(),
                     summary="auto-heal stopped: maintenance: 6 of 20 rules disabled")
    assert page.key == "heal_maintenance"
    assert machine.step(T0, page) == ["page"]
    assert machine.step(T0 + timedelta(minutes=5)) == ["resolved"]
