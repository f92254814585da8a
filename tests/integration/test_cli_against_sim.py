"""The README's promises, end to end: the CLI against the simulated organization.

The simulator runs in-process on a free loopback port (moto's real server); orgscope talks to
it through boto3 with the endpoint as the only difference. Nothing in boto3 is mocked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from orgscope import plugins, wiring
from orgscope.scheduler import serve
from sim.org import SimulatedOrg
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    # a short back-fill and cost history keep the full cycles quick
    with simulated_org(tmp_path_factory.mktemp("org"),
                       replace={'backfill = "2d"': 'backfill = "1h"',
                                "history_months = 13": "history_months = 2"}) as running:
        yield running


def expected_rule_count(sim: SimulatedOrg) -> int:
    return len(sim.deployment.rules)


def test_collect_once_gives_an_ok_run_for_every_account(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    assert org.cli("collect", "--once") == 0
    out = capsys.readouterr().out
    regional = [c for c in plugins.COLLECTORS.values() if c.scope == "regional"]
    expected = 13 * len(regional) + (len(plugins.COLLECTORS) - len(regional))
    assert f": {expected} ok, 0 failed;" in out
    runs = org.query("select collector, account_id, status from runs")
    assert len(runs) == expected and {r["status"] for r in runs} == {"ok"}
    for collector in regional:
        assert {r["account_id"] for r in runs if r["collector"] == collector.name} == {
            a.id for a in wiring.load(org.config_path).accounts}
    # the first run on an empty store already reads metrics: inventory ran in an earlier cycle
    assert org.query("select count(*) as n from event_metrics where rule is not null")[0][
        "n"] > 0
    assert "rule health: " in out


def test_query_answers_from_the_store(org: Org, capsys: pytest.CaptureFixture[str]) -> None:
    org.cli("collect", "--once", "--only", "inventory")
    capsys.readouterr()
    assert org.cli("query", "select count(*) as n from rules", "--format", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["n"] == expected_rule_count(org.sim) > 0
    assert org.cli("query", "select count(*) from rules") == 0
    assert "count_star()" in capsys.readouterr().out


def test_bad_sql_exits_2_and_names_the_views(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    assert org.cli("query", "select * from rulez") == 2
    err = capsys.readouterr().err
    assert "rulez" in err and "views: accounts" in err


def test_inventory_matches_the_organization(org: Org) -> None:
    org.cli("collect", "--once", "--only", "inventory")
    stored = {(r["account_id"], r["bus"], r["rule"]) for r in org.query(
        "select account_id, bus, rule from rules")}
    assert stored == set(org.sim.deployment.rules)
    central = org.query(
        "select allowed_principals from event_buses where bus = 'central-bus'")
    assert len(central) == 1 and len(central[0]["allowed_principals"]) >= 3  # type: ignore[arg-type]
    with_dlq = org.query("select count(*) as n from rules where len(dlq_arns) > 0")
    assert with_dlq[0]["n"] > 0


def test_a_rule_disabled_through_the_api_shows_disabled(org: Org) -> None:
    account, bus, rule = org.sim.deployment.rules[0]
    events = org.sim.admin.client(account, "events")
    events.disable_rule(Name=rule, EventBusName=bus)
    try:
        org.cli("collect", "--once", "--only", "inventory")
        (row,) = org.query(
            f"select state from rules where account_id = '{account}' and rule = '{rule}' "
            f"and bus = '{bus}'")
        assert row["state"] == "DISABLED"
    finally:
        events.enable_rule(Name=rule, EventBusName=bus)


@pytest.mark.parametrize(("how", "reason"), [
    ("missing-role", "cannot assume OrgScopeReadOnly: AccessDenied on AssumeRole"),
    ("no-permissions",
     "the read role was assumed but every read was refused: events:ListEventBuses (inventory)"),
])
def test_an_unreachable_account_is_shown_while_the_others_carry_on(
    org: Org, capsys: pytest.CaptureFixture[str], how: str, reason: str
) -> None:
    org.sim.break_account("444444444444", how)  # type: ignore[arg-type]
    try:
        assert org.cli("collect", "--once", "--only", "inventory") == 1
        out = capsys.readouterr().out
        assert ": 12 ok, 1 failed;" in out
        accounts = {r["account_id"]: r for r in org.query("select * from accounts")}
        assert accounts["444444444444"]["reachable"] is False
        assert reason in str(accounts["444444444444"]["reason"])
        assert all(r["reachable"] for a, r in accounts.items() if a != "444444444444")
    finally:
        org.sim.repair_account("444444444444")
    assert org.cli("collect", "--once", "--only", "inventory") == 0
    (row,) = org.query("select reachable from accounts where account_id = '444444444444'")
    assert row["reachable"] is True


def test_check_config_names_each_accounts_access_and_the_refused_permissions(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    org.sim.break_account("777777777777")  # the role is gone: AssumeRole fails
    org.sim.break_account("555555555555", "no-permissions")  # assumed, may read nothing
    org.sim.withhold_actions("666666666666", ["logs:FilterLogEvents"])  # an older role
    try:
        assert org.cli("check-config") == 1
    finally:
        for account in ("777777777777", "555555555555", "666666666666"):
            org.sim.repair_account(account)
    out = capsys.readouterr().out
    lines = {a: "\n".join(line for line in out.splitlines() if a in line)
             for a in ("777777777777", "555555555555", "666666666666", "111111111111")}
    assert "order-processing" in lines["777777777777"]
    assert " unreachable " in lines["777777777777"] and "AccessDenied" in lines["777777777777"]
    assert " no-read " in lines["555555555555"]
    assert "events:ListEventBuses (inventory)" in lines["555555555555"]
    assert "xray:GetTraceSummaries (xray)" in lines["555555555555"]
    assert " partial " in lines["666666666666"]
    assert "logs:FilterLogEvents (otel)" in lines["666666666666"]
    assert "events:" not in lines["666666666666"]
    assert lines["111111111111"].endswith("readable")
    assert "1 unreachable" in out and "1 no-read" in out and "1 partial" in out
    assert "10 of 13 readable" in out
    assert org.cli("check-config") == 0
    assert "All 13 accounts readable." in capsys.readouterr().out


def test_serve_collects_at_start_and_stops_cleanly(org: Org) -> None:
    before = org.query("select count(distinct run_id) as n from runs")[0]["n"]
    stop = threading.Event()
    config = wiring.load(org.config_path)
    inventory = plugins.COLLECTORS["inventory"]
    thread = threading.Thread(target=serve, args=(wiring.runner(config), [inventory],
                                                    plugins.run_steps, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = org.query("select count(distinct run_id) as n from runs")[0]["n"]
            if now > before:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert org.query("select count(distinct run_id) as n from runs")[0]["n"] == before + 1
