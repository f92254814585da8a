"""Auto-heal against the simulated organization: the heal role, the safety checks, the audit.

One simulator for the module; the tests run in file order and share its state (each disables
its own rules). Every AWS call orgscope makes is recorded through the session factory's call
hook, so "no write call" is counted, not assumed. The IAM gate in front of moto enforces the
role templates: the read role cannot call EnableRule, and a deleted heal role cannot be
assumed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from alerts.step import run_alerts
from heal.actions import heal_permissions
from heal.run import heal_role, run_heal
from orgscope import plugins, wiring
from orgscope.aws import SessionFactory
from orgscope.config import Config
from orgscope.health.update import update_rule_health
from orgscope.plugins import STEPS, run_steps
from orgscope.runner import Runner, count_call
from sim.org import floor_minute
from sim.slack_sink import SlackSink
from sim.topology import CREATED_DISABLED_ROUTE, OPTED_OUT_ROUTE
from tests.simulated import Org, simulated_org

pytestmark = pytest.mark.integration

Key = tuple[str, str, str]
CENTRAL = "121212121212"
HEALED: Key = ("666666666666", "default", "order-placed-to-inventory")
OPTED_OUT: Key = ("222222222222", "default", OPTED_OUT_ROUTE)
CREATED_DISABLED: Key = ("111111111111", "default", CREATED_DISABLED_ROUTE)
DRY: Key = ("888888888888", "default", "order-events-to-delivery")
NO_ROLE: Key = ("999999999999", "default", "order-placed-to-payments")
ISOLATED: Key = ("777777777777", "default", "order-placed-to-order-processing")
SLACKED: Key = ("555555555555", "default", "large-orders-to-merchant")
HEAL_EXTERNAL_ID = "heal-external-id-for-tests"


@dataclass
class Calls:
    """Every AWS call orgscope's factory sent: (service, operation, params)."""

    made: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, service: str, operation: str, params: dict[str, Any]) -> None:
        self.made.append((service, operation, dict(params)))
        count_call(service, operation, params)

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, op, params in self.made if op == operation]


@dataclass
class Healing:
    org: Org
    config: Config
    runner: Runner
    calls: Calls
    clock: datetime  # the simulator's traffic clock, advanced by tick()

    def collect(self, every_step: bool = False) -> dict[str, str | None]:
        """An inventory cycle, then the heal step (or, with ``every_step``, every step the
        inventory triggers, in order, as ``orgscope serve`` runs them)."""
        cycle = self.runner.run_cycle([plugins.collector("inventory")])
        assert cycle.failed == [], [r.error for r in cycle.failed]
        if every_step:
            return run_steps(self.runner, ["inventory"])
        return {"heal": next(s for s in STEPS if s.name == "heal").run(self.runner)}

    def disable(self, *keys: Key) -> None:
        for account, bus, rule in keys:
            self.org.sim.admin.client(account, "events").disable_rule(Name=rule,
                                                                      EventBusName=bus)

    def state(self, key: Key) -> str:
        account, bus, rule = key
        events = self.org.sim.admin.client(account, "events")
        return str(events.describe_rule(Name=rule, EventBusName=bus)["State"])

    def tick(self, minutes: int) -> tuple[datetime, datetime]:
        start = self.clock
        self.clock += timedelta(minutes=minutes)
        self.org.sim.tick(self.clock)
        return start, floor_minute(self.clock)

    def invocations(self, key: Key, start: datetime, end: datetime) -> float:
        account, bus, rule = key
        dims = [{"Name": "RuleName", "Value": rule}]
        if bus != "default":
            dims.insert(0, {"Name": "EventBusName", "Value": bus})
        answer = self.org.sim.admin.client(account, "cloudwatch").get_metric_statistics(
            Namespace="AWS/Events", MetricName="Invocations", Dimensions=dims,
            StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])
        return float(sum(point["Sum"] for point in answer["Datapoints"]))

    def actions(self, key: Key | None = None) -> list[dict[str, Any]]:
        where = "" if key is None else (
            f"where account_id = '{key[0]}' and bus = '{key[1]}' and rule = '{key[2]}'")
        return self.org.query(f"select * from heal_actions {where} order by \"at\"")


@pytest.fixture(scope="module")
def healing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Healing]:
    with pytest.MonkeyPatch.context() as patch:
        # the heal role trusts orgscope only with its own ExternalId (sim/build.py)
        patch.setenv("ORGSCOPE_HEAL_EXTERNAL_ID", HEAL_EXTERNAL_ID)
        with simulated_org(tmp_path_factory.mktemp("heal"), replace={
                "enabled = false\ndry_run = true": "enabled = true\ndry_run = false",
                'backfill = "2d"': 'backfill = "1h"'}) as org:
            config = wiring.load(org.config_path)
            calls = Calls()
            runner = Runner(config, SessionFactory(config.aws, call_hook=calls),
                            wiring.open_store(config))
            assert org.sim.started_at is not None
            healing = Healing(org, config, runner, calls, floor_minute(org.sim.started_at))
            # every rule's first inventory: only the route created DISABLED (on the central
            # bus and in the storefront's account) is disabled, and it is left alone
            summaries = healing.collect()
            assert summaries["heal"] == "heal: 2 skipped; 2 audit rows written"
            yield healing


def test_a_disabled_rule_is_healed_through_the_heal_role_and_its_traffic_resumes(
        healing: Healing) -> None:
    healing.disable(HEALED, OPTED_OUT)
    quiet = healing.tick(5)
    before = len(healing.calls.of("EnableRule"))
    summaries = healing.collect(every_step=True)
    assert list(summaries)[:2] == ["health", "heal"]
    assert summaries["heal"] is not None and "1 enabled" in summaries["heal"]
    assert healing.state(HEALED) == "ENABLED"
    enables = healing.calls.of("EnableRule")[before:]
    assert enables == [{"Name": HEALED[2], "EventBusName": HEALED[1]}]
    (row,) = healing.actions(HEALED)
    assert (row["action"], row["result"], row["dry_run"]) == ("enable", "enabled", False)
    assert row["actor"] == heal_role(healing.config).arn(HEALED[0])
    assert (row["account_name"], row["team"], row["region"]) == (
        "inventory-mgmt", "inventory", "us-east-1")
    assert "was ENABLED in the inventory of" in row["reason"]
    assert "DescribeRule says ENABLED" in row["reason"]
    assert row["disabled_by"] is None  # CloudTrail LookupEvents: missing in moto
    # the simulated traffic stopped while it was disabled and flows again
    assert healing.invocations(HEALED, *quiet) == 0
    assert healing.invocations(HEALED, *healing.tick(5)) > 0
    # the next inventory sees it ENABLED: nothing more to do or to write
    healing.collect()
    assert len(healing.actions(HEALED)) == 1


def test_an_opted_out_rule_and_a_rule_created_disabled_are_never_touched(
        healing: Healing) -> None:
    healing.collect()  # once more: a skip is recorded once, not on every run
    for key in (OPTED_OUT, CREATED_DISABLED, (CENTRAL, "central-bus", CREATED_DISABLED_ROUTE)):
        assert healing.state(key) == "DISABLED"
        assert key[2] not in {p["Name"] for p in healing.calls.of("EnableRule")}
        rows = healing.actions(key)
        assert [(r["action"], r["result"]) for r in rows] == [("skip", "skipped")], rows
        assert rows[0]["actor"] == "orgscope"
    (opted,) = healing.actions(OPTED_OUT)
    assert opted["reason"] == "opt-out: tagged orgscope:autoheal=off"
    # and IAM says no too: the heal role's Deny on the tag (a bug in orgscope's own check
    # could not re-enable it)
    account, bus, rule = OPTED_OUT
    heal_events = healing.runner.factory.client(account, "events", "us-east-1",
                                                role=heal_role(healing.config))
    with pytest.raises(ClientError) as denied:
        heal_events.enable_rule(Name=rule, EventBusName=bus)
    assert "explicit deny" in denied.value.response["Error"]["Message"]
    assert healing.state(OPTED_OUT) == "DISABLED"
    (created,) = healing.actions(CREATED_DISABLED)
    assert created["reason"].startswith("never-enabled: DISABLED in every inventory")


def test_dry_run_makes_no_write_call_and_a_real_run_then_heals(
        healing: Healing, capsys: pytest.CaptureFixture[str]) -> None:
    healing.disable(DRY)
    healing.runner.run_cycle([plugins.collector("inventory")])
    before = len(healing.calls.made)
    report = run_heal(healing.config, healing.runner.store, healing.runner.factory,
                      dry_run=True)
    assert report.results == {"would-enable": 1, "skipped": 3}
    assert healing.calls.made[before:] == []  # not even a DescribeRule
    assert healing.state(DRY) == "DISABLED"
    (row,) = healing.actions(DRY)
    assert (row["result"], row["dry_run"]) == ("would-enable", True)
    assert row["reason"].endswith("dry-run: no call made")
    # the CLI says the same, and records nothing new
    capsys.readouterr()
    assert healing.org.cli("heal", "--once", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "heal (dry-run): " in out and "would-enable" in out and DRY[2] in out
    assert len(healing.actions(DRY)) == 1
    assert healing.state(DRY) == "DISABLED"
    # dry_run off: healed
    report = run_heal(healing.config, healing.runner.store, healing.runner.factory,
                      dry_run=False)
    assert report.results.get("enabled") == 1
    assert healing.state(DRY) == "ENABLED"


def test_only_the_heal_role_can_enable_and_a_failure_stays_with_its_rule(
        healing: Healing) -> None:
    account, bus, rule = NO_ROLE
    read_client = healing.runner.factory.client(account, "events", "us-east-1")
    with pytest.raises(ClientError) as denied:
        read_client.enable_rule(Name=rule, EventBusName=bus)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "OrgScopeReadOnly" in denied.value.response["Error"]["Message"]
    # without the heal role in one account, that account's rule fails; the other is healed
    iam = healing.org.sim.admin.client(account, "iam")
    role = healing.config.heal.role_name
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    iam.delete_role(RoleName=role)
    healing.disable(NO_ROLE, ISOLATED)
    summaries = healing.collect()
    assert summaries["heal"] is not None and "1 enabled, 1 failed" in summaries["heal"]
    assert healing.state(ISOLATED) == "ENABLED"
    assert healing.state(NO_ROLE) == "DISABLED"
    (failed,) = healing.actions(NO_ROLE)
    assert failed["result"] == "failed"
    assert f"cannot assume {role}" in failed["reason"] and "AccessDenied" in failed["reason"]
    # every call auto-heal made went to what the heal role template allows
    heal_ops = {f"events:{op}" for _, op, _ in healing.calls.made
                if op in ("EnableRule", "DescribeRule")}
    assert heal_ops == set(heal_permissions())


def test_slack_hears_one_alert_one_heal_notice_and_one_resolution(
        healing: Healing, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's "done": disabled -> firing message, heal notice, resolved message, each
    delivered once to the (local) Slack webhook."""
    sink = SlackSink()
    sink.start()
    try:
        monkeypatch.setenv(healing.config.slack.default_webhook_env, sink.webhook("default"))
        for route in healing.config.slack.routes:
            if route.webhook_env:
                monkeypatch.setenv(route.webhook_env, sink.webhook(route.team))
        config, store = healing.config, healing.runner.store

        def cycle(*, metrics: bool = False) -> None:
            """Inventory (and metrics), then the steps in the registry's order."""
            healing.runner.run_cycle([plugins.collector("inventory")])
            if metrics:
                healing.runner.run_cycle([plugins.collector("metrics")])
            update_rule_health(config, store)
            run_heal(config, store, healing.runner.factory)
            run_alerts(config, store, healing.runner.factory, max_wait_s=10)

        # traffic up to now, metrics read, so the health model judges (not STALE)
        healing.org.sim.tick(datetime.now(UTC) + timedelta(minutes=1))
        cycle(metrics=True)
        healing.disable(SLACKED)
        cycle()  # DISABLED -> rule_disabled fires; auto-heal re-enables it: a heal notice
        assert healing.state(SLACKED) == "ENABLED"
        cycle()  # the inventory sees it ENABLED: rule_disabled resolves
        key = "rule_disabled/" + "/".join((SLACKED[0], "us-east-1", *SLACKED[1:]))
        (healed,) = healing.actions(SLACKED)
        # the firing message and the heal notice come from the same alerts run (same
        # created_at); the resolution from a later one
        notices = healing.org.query(
            "select kind, status, attempts, payload from notifications "
            f"where alert_key = '{key}' "
            "order by created_at, kind = 'heal', kind = 'resolved'")
        assert [(n["kind"], n["status"]) for n in notices] == [
            ("firing", "sent"), ("heal", "sent"), ("resolved", "sent")], notices
        delivered = [json.dumps(r.payload, sort_keys=True) for r in sink.delivered()]
        for notice in notices:
            assert delivered.count(str(notice["payload"])) == 1, notice["kind"]
        assert healed["result"] == "enabled"
        assert SLACKED[2] in str(notices[1]["payload"])
    finally:
        sink.stop()


def test_maintenance_pages_once_and_heals_nothing(healing: Healing) -> None:
    total = len(healing.org.sim.deployment.rules)
    already = {OPTED_OUT, NO_ROLE}  # disabled after being enabled, still disabled
    candidates = [key for key in healing.org.sim.deployment.rules
                  if key not in already and key[2] != CREATED_DISABLED_ROUTE]
    needed = int(total * healing.config.heal.maintenance_disabled_share) + 1 - len(already)
    healing.disable(*candidates[:needed])
    before = len(healing.calls.of("EnableRule"))
    summaries = healing.collect()
    healing.collect()  # still in maintenance: no second page
    assert len(healing.calls.of("EnableRule")) == before
    assert all(healing.state(key) == "DISABLED" for key in candidates[:needed])
    pages = healing.org.query("select * from heal_actions where rule is null")
    assert len(pages) == 1, pages
    reason = f"maintenance: {needed + len(already)} of {total} rules disabled"
    assert str(pages[0]["reason"]).startswith(reason)
    assert (pages[0]["action"], pages[0]["result"]) == ("skip", "skipped")
    assert summaries["heal"] is not None and reason in summaries["heal"]
