"""The access model: unreachable, no-read, partial, readable (orgscope/access.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orgscope.access import (
    ACCESS_MEANINGS,
    ACCESS_STATES,
    UNREACHABLE_PREFIX,
    access_table,
    account_access,
    denied_action,
    denied_code,
)

ACTIONS = {"inventory": ("events:ListEventBuses", "events:ListRules",
                         "events:ListTagsForResource"),
           "otel": ("logs:FilterLogEvents",), "xray": ("xray:GetTraceSummaries",)}
SAID = ("AccessDeniedException on FilterLogEvents: User: arn:aws:sts::1:assumed-role/R is not "
        "authorized to perform: logs:FilterLogEvents on resource: aws/spans")


def run(collector: str, error: str | None = None, calls: int = 3,
        region: str = "us-east-1") -> dict[str, object]:
    return {"collector": collector, "region": region, "status": "error" if error else "ok",
            "error": error, "api_calls": calls}


def test_the_denied_action_comes_from_awss_message_else_the_declared_operation() -> None:
    assert denied_action(SAID) == "logs:FilterLogEvents"
    assert denied_action("AccessDenied on ListRules: no", ACTIONS["inventory"]) == \
        "events:ListRules"
    assert denied_action("AccessDenied on Mystery: no", ACTIONS["inventory"]) == "Mystery"
    assert denied_code(SAID) == "AccessDeniedException"
    assert denied_code("ThrottlingException on ListRules: slow down") is None
    assert denied_code(None) is None and denied_code(float("nan")) is None


def test_the_four_states() -> None:
    assert account_access("cannot assume R: AccessDenied", [], ACTIONS).access == "unreachable"
    skipped = run("inventory", f"{UNREACHABLE_PREFIX}cannot assume R: AccessDenied", 0)
    assert account_access(None, [skipped], ACTIONS).reason == "cannot assume R: AccessDenied"
    nothing = account_access(None, [run("inventory", "AccessDenied on ListEventBuses: no", 1),
                                    run("otel", SAID, 1), run("metrics", None, 0)], ACTIONS)
    assert (nothing.access, nothing.reachable) == ("no-read", False)
    assert nothing.denied_labels() == ["events:ListEventBuses (inventory)",
                                       "logs:FilterLogEvents (otel)"]
    gap = account_access(None, [run("inventory"), run("otel", SAID, 1),
                                run("otel", SAID, 1, "eu-west-1")], ACTIONS)
    assert (gap.access, gap.reachable) == ("partial", True)
    assert gap.reason == "readable with gaps: refused logs:FilterLogEvents (otel)"
    fine = account_access(None, [run("inventory"), run("otel", "ThrottlingException on X: y")],
                          ACTIONS)
    assert (fine.access, fine.reason) == ("readable", None)


def test_access_table_reads_the_stored_accounts_and_latest_runs() -> None:
    accounts = pd.DataFrame([
        {"account_id": "1", "reachable": False, "reason": "cannot assume R: AccessDenied"},
        {"account_id": "2", "reachable": True, "reason": None},
        {"account_id": "3", "reachable": True, "reason": None},
        {"account_id": "4", "reachable": False,
         "reason": "the read role was assumed but every read was refused: x (inventory)"},
    ])
    runs = pd.DataFrame([
        {"account_id": "2", **run("inventory")}, {"account_id": "2", **run("otel", SAID, 1)},
        {"account_id": "3", **run("inventory")},
        {"account_id": "4", **run("inventory", "AccessDenied on ListRules: no", 1)},
    ])
    table = access_table(accounts, runs, ACTIONS).set_index("account_id")
    assert list(table["access"]) == ["unreachable", "partial", "readable", "no-read"]
    assert table.loc["2", "denied"] == ["logs:FilterLogEvents (otel)"]


@pytest.mark.parametrize("state", ACCESS_STATES)
def test_every_state_has_a_meaning(state: str) -> None:
    assert ACCESS_MEANINGS[state]


def test_every_collector_probes_exactly_the_actions_it_declares() -> None:
    from orgscope import plugins

    for collector in plugins.COLLECTORS.values():
        probed = [action for action, _probe in collector.probes]
        assert sorted(probed) == sorted(collector.iam_actions), collector.name


def test_a_run_refused_after_reading_proves_the_role_reads() -> None:
    # the inventory read buses and rules, then ListTagsForResource was refused
    tags = run("inventory", "AccessDeniedException on ListTagsForResource: no", calls=3)
    state = account_access(None, [tags], ACTIONS)
    assert state.access == "partial" and state.denied_labels() == [
        "events:ListTagsForResource (inventory)"]


def test_the_latest_accounts_row_decides_whether_anything_can_be_read() -> None:
    accounts = pd.DataFrame([
        # reachable now; the payer's cost run from hours ago was skipped as unreachable
        {"account_id": "1", "reachable": True, "reason": None},
        # no-read, and no runs of it in the lookback
        {"account_id": "2", "reachable": False,
         "reason": "the read role was assumed but every read was refused: x (inventory)"},
    ])
    runs = pd.DataFrame([
        {"account_id": "1", **run("inventory")},
        {"account_id": "1", **run("cost", f"{UNREACHABLE_PREFIX}cannot assume R", 0)},
    ])
    table = access_table(accounts, runs, ACTIONS).set_index("account_id")
    assert list(table["access"]) == ["readable", "no-read"]


def test_the_metrics_runs_that_say_something_about_the_role_are_reachability_cycles(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from orgscope.access import reachability_runs_sql
    from orgscope.datasets import RUNS, all_datasets
    from orgscope.store import Store

    now = datetime(2028, 12, 31, 23, 30, tzinfo=UTC)  # a year's last half hour
    store = Store(str(tmp_path / "store"), all_datasets())
    rows = [
        ("inventory", "c0", 55, "ok", None, 12),
        ("metrics", "c1", 50, "error", UNREACHABLE_PREFIX + "AccessDenied", 0),
        ("metrics", "c2", 45, "ok", None, 1),            # read CloudWatch: the role works
        ("metrics", "c3", 40, "ok", None, 0),            # nothing inventoried: says nothing
        ("metrics", "c4", 35, "error", "ThrottlingException: slow down", 1),  # not the role
        ("dlq", "c5", 30, "error", UNREACHABLE_PREFIX + "AccessDenied", 0),  # not a witness
    ]
    for n, (collector, run_id, ago, status, error, calls) in enumerate(rows):
        store.write(RUNS.name, pd.DataFrame([{
            "run_id": run_id, "collector": collector, "account_id": "111111111111",
            "region": "us-east-1", "started_at": now - timedelta(minutes=ago),
            "duration_s": 1.0, "status": status, "error": error, "api_calls": calls,
            "api_calls_by_operation": "{}", "metrics_requested": 0, "traces_retrieved": 0,
            "rows": 0}]), f"r{n}")
    since = now - timedelta(hours=2)
    found = store.query(reachability_runs_sql("run_id"), [since.date(), since, now])
    assert sorted(found["run_id"]) == ["c0", "c1", "c2"]
