"""Auto-heal's AWS edge without AWS: verification, failures, the audit rows, the CLI's errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from heal.actions import ENABLE_RULE, enable_rule, heal_permissions
from heal.run import heal_role, run_heal
from orgscope import wiring
from orgscope.aws import AccessError
from orgscope.cli import main
from orgscope.config import Config
from orgscope.datasets import HEAL_ACTIONS, RULES, RUNS

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class FakeEvents:
    """EnableRule / DescribeRule answering from a script of states (or errors)."""

    def __init__(self, states: list[str | Exception], enable_error: Exception | None = None):
        self.states = states
        self.enable_error = enable_error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def enable_rule(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("EnableRule", params))
        if self.enable_error:
            raise self.enable_error
        return {}

    def describe_rule(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("DescribeRule", params))
        state = self.states.pop(0)
        if isinstance(state, Exception):
            raise state
        return {"State": state}


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "nope"}}, operation)


def test_enable_then_verify() -> None:
    events = FakeEvents(["ENABLED"])
    outcome = enable_rule(events, "central-bus", "r", sleep=lambda _: None)
    assert (outcome.result, outcome.note) == ("enabled", "EnableRule done; DescribeRule says "
                                                         "ENABLED")
    assert events.calls == [("EnableRule", {"Name": "r", "EventBusName": "central-bus"}),
                            ("DescribeRule", {"Name": "r", "EventBusName": "central-bus"})]


def test_eventual_consistency_is_waited_for_then_not_verified() -> None:
    slept: list[float] = []
    events = FakeEvents(["DISABLED", "ENABLED"])
    assert enable_rule(events, "default", "r", sleep=slept.append).result == "enabled"
    assert slept == [1.0]
    events = FakeEvents(["DISABLED"] * 3)
    outcome = enable_rule(events, "default", "r", sleep=lambda _: None)
    assert (outcome.result, outcome.note) == (
        "not-verified", "EnableRule done; DescribeRule still says DISABLED")
    events = FakeEvents([client_error("ThrottlingException", "DescribeRule")])
    outcome = enable_rule(events, "default", "r", sleep=lambda _: None)
    assert outcome.result == "not-verified" and "ThrottlingException on DescribeRule" in \
        outcome.note


def test_a_refused_enable_raises_for_the_caller_to_record() -> None:
    events = FakeEvents([], enable_error=client_error("AccessDeniedException", "EnableRule"))
    with pytest.raises(ClientError):
        enable_rule(events, "default", "r")
    assert [name for name, _ in events.calls] == ["EnableRule"]


def test_every_call_is_declared() -> None:
    assert heal_permissions() == ["events:DescribeRule", "events:EnableRule"]
    assert set(ENABLE_RULE.permissions) == set(heal_permissions())


def test_the_heal_role_is_never_the_read_role(config: Config) -> None:
    role = heal_role(config)
    assert role.name == config.heal.role_name != config.aws.read_role_name
    assert role.external_id_env == config.heal.external_id_env
    assert role.session_name == "orgscope-heal"


# --- run_heal over a hand-made store ---------------------------------------------------------


class FakeFactory:
    """The session factory's client(): a FakeEvents per account, or an AccessError."""

    def __init__(self, clients: dict[str, FakeEvents | AccessError]) -> None:
        self.clients = clients
        self.asked: list[tuple[str, str, str, str | None]] = []

    def client(self, account_id: str, service: str, region: str, role: Any = None) -> Any:
        self.asked.append((account_id, service, region, getattr(role, "name", None)))
        found = self.clients[account_id]
        if isinstance(found, AccessError):
            raise found
        return found


def write_inventory(config: Config, at: datetime, states: dict[tuple[str, str], str],
                    tags: dict[str, dict[str, str]] | None = None) -> None:
    """One inventory snapshot of ``states`` ((account, rule) -> state), with each rule's
    ``tags`` (by rule name; none when not given)."""
    store = wiring.open_store(config)
    rows: list[dict[str, Any]] = [
        {"account_id": account, "region": "us-east-1", "bus": "default", "rule": rule,
             "arn": None, "state": state, "description": None, "event_pattern": None,
             "schedule_expression": None, "managed_by": None, "targets": "[]",
             "target_count": 0, "dlq_arns": [], "tags": json.dumps((tags or {}).get(rule, {})),
             "collected_at": at}
            for (account, rule), state in states.items()]
    store.write(RULES.name, pd.DataFrame(rows, columns=RULES.columns), f"c-{at:%H%M%S}")
    runs = [{"run_id": f"c-{at:%H%M%S}", "collector": "inventory", "account_id": account,
             "region": "us-east-1", "started_at": at, "duration_s": 1.0, "status": "ok",
             "error": None, "api_calls": 1, "api_calls_by_operation": "{}",
             "metrics_requested": 0, "traces_retrieved": 0, "rows": 1}
            for account in sorted({a for a, _ in states})]
    frame = pd.DataFrame(runs)
    for column in RUNS.columns:
        if column not in frame:
            frame[column] = None
    store.write(RUNS.name, frame[RUNS.columns], f"c-{at:%H%M%S}")


def test_run_heal_isolates_a_failure_and_writes_one_row_per_decision(config: Config) -> None:
    ok, denied = "111111111111", "222222222222"
    healthy = {(ok, f"healthy-{i}"): "ENABLED" for i in range(8)}  # 2 of 11: no maintenance
    write_inventory(config, NOW - timedelta(minutes=2), {
        **healthy, (ok, "a"): "ENABLED", (denied, "b"): "ENABLED", (ok, "new"): "DISABLED"})
    write_inventory(config, NOW - timedelta(minutes=1), {
        **healthy, (ok, "a"): "DISABLED", (denied, "b"): "DISABLED", (ok, "new"): "DISABLED"})
    events = FakeEvents(["ENABLED"])
    factory = FakeFactory({ok: events, denied: AccessError(denied, "cannot assume X: denied")})
    store = wiring.open_store(config)
    report = run_heal(config, store, factory, now=NOW, dry_run=False)  # type: ignore[arg-type]
    assert report.results == {"enabled": 1, "failed": 1, "skipped": 1}
    assert {asked[3] for asked in factory.asked} == {config.heal.role_name}
    rows = store.query('select * exclude (date) from heal_actions order by rule')
    assert list(rows["rule"]) == ["a", "b", "new"]
    assert list(rows["result"]) == ["enabled", "failed", "skipped"]
    assert rows.iloc[1]["reason"].endswith("; cannot assume X: denied")
    assert rows.iloc[0]["actor"] == f"arn:aws:iam::{ok}:role/{config.heal.role_name}"
    assert rows.iloc[2]["actor"] == "orgscope"
    assert list(rows["account_name"]) == ["customer-web", "mobile-apps", "customer-web"]
    assert set(rows.columns) == set(HEAL_ACTIONS.columns)
    # the same inventory again: the healed rule waits for the next one, the failure for an
    # hour, the skip was said: nothing new
    again = run_heal(config, store, factory, now=NOW + timedelta(seconds=30),  # type: ignore[arg-type]
                     dry_run=False)
    assert again.written == 0 and len(events.calls) == 2


def test_the_audit_row_names_the_rules_own_team_over_its_accounts(config: Config) -> None:
    account = "121212121212"  # the platform team's central-bus account
    tags = {"ops-audit": {"Team": "orders"},  # a team config.toml knows
            "spoofed": {"Team": "<!channel>"}}  # not one: the account's team stands
    healthy = {(account, f"healthy-{i}"): "ENABLED" for i in range(8)}  # no maintenance
    write_inventory(config, NOW - timedelta(minutes=2), {
        **healthy, (account, "ops-audit"): "ENABLED", (account, "plain"): "ENABLED",
        (account, "spoofed"): "ENABLED"}, tags)
    write_inventory(config, NOW - timedelta(minutes=1), {
        **healthy, (account, "ops-audit"): "DISABLED", (account, "plain"): "DISABLED",
        (account, "spoofed"): "DISABLED"}, tags)
    run_heal(config, wiring.open_store(config), FakeFactory({}), now=NOW,  # type: ignore[arg-type]
             dry_run=True)
    rows = wiring.open_store(config).query("select rule, team from heal_actions order by rule")
    assert dict(zip(rows["rule"], rows["team"], strict=True)) == {
        "ops-audit": "orders", "plain": "platform", "spoofed": "platform"}


def test_dry_run_asks_for_no_client(config: Config) -> None:
    account = "111111111111"
    write_inventory(config, NOW - timedelta(minutes=2), {(account, "a"): "ENABLED"})
    write_inventory(config, NOW - timedelta(minutes=1), {(account, "a"): "DISABLED"})
    factory = FakeFactory({})
    report = run_heal(config, wiring.open_store(config), factory, now=NOW,  # type: ignore[arg-type]
                      dry_run=True)
    assert factory.asked == []
    assert report.results == {"would-enable": 1}
    assert report.summary() == "heal (dry-run): 1 would-enable; 1 audit rows written"
    assert list(report.table()["recorded"]) == ["yes"]


# --- the CLI's user errors -------------------------------------------------------------------


def test_heal_needs_once_and_an_enabled_heal(config_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "heal"]) == 2
    assert "heal runs once: pass --once" in capsys.readouterr().err
    assert main(["--config", str(config_file), "heal", "--once"]) == 2
    err = capsys.readouterr().err
    assert "auto-heal is off ([heal] enabled = false in" in err and "--dry-run" in err
    assert main(["--config", str(config_file), "heal", "--once", "--dry-run"]) == 0
    assert "heal (dry-run): no DISABLED rule to act on (0 rules)" in capsys.readouterr().out


def test_a_bad_exclude_pattern_is_a_one_line_config_error(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = config_file.read_text().replace("exclude_rules = []",
                                           'exclude_rules = ["central-bus/orders"]')
    config_file.write_text(text)
    assert main(["--config", str(config_file), "check-config", "--no-aws"]) == 2
    err = capsys.readouterr().err
    assert "heal.exclude_rules[0]" in err and "account_id/region/bus/rule" in err


def test_an_unexpected_error_fails_only_its_rule(config: Config) -> None:
    broken, fine = "111111111111", "222222222222"
    healthy = {(fine, f"healthy-{i}"): "ENABLED" for i in range(8)}
    write_inventory(config, NOW - timedelta(minutes=2),
                    {**healthy, (broken, "a"): "ENABLED", (fine, "b"): "ENABLED"})
    write_inventory(config, NOW - timedelta(minutes=1),
                    {**healthy, (broken, "a"): "DISABLED", (fine, "b"): "DISABLED"})
    factory = FakeFactory({broken: FakeEvents([], enable_error=RuntimeError("boom")),
                           fine: FakeEvents(["ENABLED"])})
    store = wiring.open_store(config)
    report = run_heal(config, store, factory, now=NOW, dry_run=False)  # type: ignore[arg-type]
    assert report.results == {"enabled": 1, "failed": 1}
    rows = store.query('select rule, result, reason from heal_actions order by rule')
    assert list(rows["result"]) == ["failed", "enabled"]
    assert rows.iloc[0]["reason"].endswith("; RuntimeError: boom")
