"""The second simulated organization, Harbor Lines (sim/shapes.py, sim/orgs/harbor.toml), end
to end: check-config, one full collection with every post-collection step, and every page.

It is shaped unlike QuickGrocer: three regions, default-bus-only accounts, scheduled,
target-less, API-destination and cross-region rules, every pattern matcher, an archive's
managed rule, rules tagged with another team, an account whose role may read nothing and one
whose role lacks the otel permission, a producer annotating its own span with the context it
injects, and shared cost allocated evenly.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import verdicts as vd
from dashboard.filters import Filters
from orgscope import wiring
from orgscope.cli import main
from orgscope.config import Config
from orgscope.store import Store
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from sim.shapes import CONFIG, CUSTOMS, NO_READ, OPS, OPS_BUS, PARTIAL, HarborOrg
from tests.simulated import BASE_ENV

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
PAGES = ("app_pages/event_flow.py", "app_pages/traces.py", "app_pages/organization.py",
         "app_pages/alerts.py", "app_pages/cost.py", "app_pages/collectors.py")


@dataclass
class Harbor:
    org: HarborOrg
    config_path: Path
    check_config: tuple[int, str]
    collect: int

    @property
    def config(self) -> Config:
        return wiring.load(self.config_path)

    @property
    def store(self) -> Store:
        return wiring.open_store(self.config)

    def rows(self, sql: str) -> list[dict[str, object]]:
        return [{str(k): v for k, v in r.items()}
                for r in self.store.query(sql).to_dict("records")]


@pytest.fixture(scope="module")
def harbor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harbor]:
    folder = tmp_path_factory.mktemp("harbor")
    text = CONFIG.read_text().replace('path = "../../data-harbor"', 'path = "./store"')
    config_path = folder / "config.toml"
    config_path.write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in BASE_ENV.items():
            patch.setenv(key, value)
        for key in ("ORGSCOPE_EXTERNAL_ID", "ORGSCOPE_STORE", "ORGSCOPE_CONFIG"):
            patch.delenv(key, raising=False)
        org = HarborOrg(wiring.load(config_path))
        try:
            patch.setenv("AWS_ENDPOINT_URL", org.start())
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                checked = main(["--config", str(config_path), "check-config"])
            collected = main(["--config", str(config_path), "collect", "--once"])
            yield Harbor(org, config_path, (checked, out.getvalue()), collected)
        finally:
            org.stop()


def test_check_config_names_each_access_state(harbor: Harbor) -> None:
    code, out = harbor.check_config
    assert code == 1
    lines = {line.split()[1]: line for line in out.splitlines()
             if len(line.split()) > 1 and line.split()[1].startswith("40000000000")}
    assert lines[NO_READ].split()[3] == "no-read"
    assert lines[PARTIAL].split()[3] == "partial"
    assert all(line.split()[3] == "readable" for account, line in lines.items()
               if account not in (NO_READ, PARTIAL))
    assert f"{PARTIAL} (crane-telemetry) partial: the read role may not logs:FilterLogEvents " \
        "(otel)" in out


def test_every_rule_is_read_and_judged_in_every_region(harbor: Harbor) -> None:
    # the collection fails only the refused runs (exit 1 says so), the rest carry on
    assert harbor.collect == 1
    failed = harbor.rows("SELECT DISTINCT collector, account_id FROM runs WHERE status <> 'ok'")
    assert {(r["collector"], r["account_id"]) for r in failed} == {
        ("inventory", NO_READ), ("xray", NO_READ), ("otel", NO_READ), ("schemas", NO_READ),
        ("otel", PARTIAL)}
    inventory = harbor.rows("SELECT account_id, region, bus, rule, event_pattern, "
                            "schedule_expression, target_count, managed_by FROM rules")
    readable = [r for r in harbor.org.rules if r.account != NO_READ]
    found = {(r["account_id"], r["region"], r["bus"], r["rule"]) for r in inventory}
    assert {(r.account, r.region, r.bus, r.name) for r in readable} <= found
    archive = found - {(r.account, r.region, r.bus, r.name) for r in readable}
    assert {rule for *_, rule in archive} == {f"Events-Archive-{OPS_BUS}-archive"}
    schedules = {r["rule"]: r for r in inventory if isinstance(r["schedule_expression"], str)}
    assert set(schedules) == {"nightly-reconcile", "every-five-minutes", "hourly-rollup"}
    assert not any(isinstance(r["event_pattern"], str) for r in schedules.values())
    assert {r["region"] for r in inventory} == set(harbor.config.aws.regions)
    verdicts = harbor.rows("SELECT account_id, region, bus, rule, verdict FROM rule_health")
    judged = {(r["account_id"], r["region"], r["bus"], r["rule"]): r["verdict"]
              for r in verdicts}
    assert set(judged) == found  # every rule has a verdict, nothing dropped
    assert judged[(harbor.org.rules[8].account, harbor.org.rules[8].region, "default",
                   "draft-rule")] == "DISABLED"
    assert {v for k, v in judged.items() if k[3] != "draft-rule"} == {"OK"}


def test_accounts_carry_their_access_state(harbor: Harbor) -> None:
    accounts = {r["account_id"]: r for r in harbor.rows(
        "SELECT account_id, reachable, reason FROM accounts")}
    assert accounts[NO_READ]["reachable"] is False
    assert "every read was refused" in str(accounts[NO_READ]["reason"])
    assert accounts[PARTIAL]["reachable"] is True
    assert accounts[PARTIAL]["reason"] == \
        "readable with gaps: refused logs:FilterLogEvents (otel)"


def test_a_rules_own_team_tag_wins_on_the_event_flow_page(harbor: Harbor) -> None:
    verdicts = vd.rule_verdicts(harbor.store, Filters())
    teams = dict(zip(verdicts["rule"], verdicts["team"], strict=True))
    assert teams["berth-events-to-berths"] == "berths"
    assert teams["customs-holds-to-customs"] == "customs"  # tagged "team", lower case
    assert teams["ops-audit-sink"] == "ops"
    only = vd.rule_verdicts(harbor.store, Filters(teams=("customs",)))
    assert "customs-holds-to-customs" in set(only["rule"])
    assert set(only["account_id"]) == {OPS, CUSTOMS}


def test_a_producer_annotating_its_own_span_is_one_unbroken_trace(harbor: Harbor) -> None:
    spans = harbor.rows("SELECT trace_id, span_id, annotations FROM spans")
    assert len(spans) == 2
    traces = harbor.rows("SELECT trace_id, span_count, breaks, merged_into FROM traces "
                         "WHERE merged_into IS NULL")
    assert [(t["span_count"], t["breaks"]) for t in traces] == [(2, 0)]
    annotations = [json.loads(str(s["annotations"])) for s in spans]
    assert all("traceparent" in a for a in annotations)


def test_cost_with_shared_cost_allocated_evenly(harbor: Harbor) -> None:
    [row] = harbor.rows("SELECT count(DISTINCT account_id) AS accounts, sum(amount) AS amount "
                        "FROM cost_daily")
    assert row["accounts"] == len(harbor.config.accounts) and float(str(row["amount"])) > 0


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_the_second_organization(harbor: Harbor, page: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(harbor.config_path))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=90).run()
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    if page == "app_pages/organization.py":
        assert "legacy-billing" in " ".join(str(e.value) for e in app.error)
        assert "crane-telemetry" in " ".join(str(w.value) for w in app.warning)
