"""The cost collector reading the simulator's FOCUS data export from S3, end to end.

The simulator writes its cost model as a FOCUS 1.0 export into a bucket of the management
account (sim/data_export.py); orgscope lists and reads it through the read role with real
boto3 calls, and falls back to the simulated Cost Explorer when the export breaks. Six
months of history keep the first run short.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from collectors.cost import history_start
from orgscope.cli import main
from sim.costs import EVENTBRIDGE
from sim.data_export import EXPORT_NAME, PREFIX, SQS, bucket_name, export_uri
from tests.simulated import Org, clear_of_midnight, recent_team_move, simulated_org

pytestmark = pytest.mark.integration

MONTHS = 6
CENT = 0.005
MANAGEMENT = "101010101010"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    clear_of_midnight()
    replace = {"history_months = 13": f"history_months = {MONTHS}",
               'source = "cost_explorer"':
                   f'source = "data_export"\nexport_uri = "{export_uri(MANAGEMENT)}"',
               **recent_team_move()}
    with simulated_org(tmp_path_factory.mktemp("cost-export"), replace) as running:
        assert running.sim.config.organization.management_account_id == MANAGEMENT
        assert running.cli("collect", "--once", "--only", "cost") == 0
        yield running


def _runs(org: Org) -> list[dict[str, object]]:
    """The cost collector's runs, oldest first: status, error and calls by operation."""
    sql = ("select status, error, api_calls_by_operation from runs where collector = 'cost' "
           "order by started_at")
    return org.query(sql)


def test_first_run_reads_the_export_only_one_list_and_one_get_per_month(org: Org) -> None:
    first = _runs(org)[0]
    assert first["status"] == "ok", first["error"]
    calls = json.loads(str(first["api_calls_by_operation"]))
    assert calls == {"s3:ListObjectsV2": MONTHS, "s3:GetObject": MONTHS}


def test_daily_lines_equal_the_simulated_cost_explorers_to_the_cent(org: Org) -> None:
    model = org.sim.cost_model
    keys = ("day", "account_id", "team_tag", "service", "usage_type")
    truth = model.totals(keys, start=history_start(model.today, MONTHS))
    rows = org.query("select date, account_id, team_tag, service, usage_type, amount "
                     "from cost_daily")
    stored = {(r["date"].date(), r["account_id"], r["team_tag"], r["service"],  # type: ignore[attr-defined]
               r["usage_type"]): float(r["amount"]) for r in rows}  # type: ignore[arg-type]
    assert set(stored) == set(truth)
    wrong = [k for k, amount in truth.items() if abs(stored[k] - float(amount)) >= CENT]
    assert wrong == []


def test_resource_lines_name_the_topologys_rules_buses_and_queues(org: Org) -> None:
    rows = org.query("select service, resource_id, sum(amount) as amount from cost_resources "
                     "group by all")
    by_service: dict[object, set[str]] = {}
    for row in rows:
        by_service.setdefault(row["service"], set()).add(str(row["resource_id"]))
    rules = {arn for arn in by_service[EVENTBRIDGE] if ":rule/" in arn}
    buses = {arn for arn in by_service[EVENTBRIDGE] if ":event-bus/" in arn}
    assert rules and buses
    assert by_service[SQS] and all(a.startswith("arn:aws:sqs:") for a in by_service[SQS])
    deployed = {f"{account}:rule/{rule if bus == 'default' else f'{bus}/{rule}'}"
                for account, bus, rule in org.sim.deployment.rules}
    assert {arn.split(":", 4)[4] for arn in rules} <= deployed
    # a resource's day is part of its (account, service, usage type) daily line
    (check,) = org.query("""
        select count(*) as over from (
          select r.date, r.account_id, r.service, r.usage_type, sum(r.amount) as resources,
                 any_value(d.amount) as daily
          from cost_resources r join (
            select date, account_id, service, usage_type, sum(amount) as amount
            from cost_daily group by all) d using (date, account_id, service, usage_type)
          group by all) where resources > daily + 0.005""")
    assert check["over"] == 0


def test_an_unreadable_export_falls_back_to_cost_explorer(org: Org) -> None:
    today = org.sim.cost_model.today
    s3 = org.sim.admin.client(MANAGEMENT, "s3")
    key = (f"{PREFIX}/{EXPORT_NAME}/data/BILLING_PERIOD={today:%Y-%m}/"
           f"{EXPORT_NAME}-00001.snappy.parquet")
    s3.put_object(Bucket=bucket_name(MANAGEMENT), Key=key, Body=b"not parquet")
    assert org.cli("collect", "--once", "--only", "cost") == 0
    last = _runs(org)[-1]
    assert last["status"] == "ok", last["error"]
    calls = json.loads(str(last["api_calls_by_operation"]))
    assert calls["ce:GetCostAndUsage"] > 0 and calls["s3:GetObject"] >= 1
    (span,) = org.query("select max(date) as last from cost_daily")
    assert span["last"].date() == today  # type: ignore[attr-defined]
    assert today - timedelta(days=1) >= history_start(today, MONTHS)


def test_check_config_probes_the_exports_bucket(org: Org) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--config", str(org.config_path), "check-config"])
    lines = [line.split() for line in out.getvalue().splitlines()]
    (management,) = [words for words in lines if len(words) > 3 and words[1] == MANAGEMENT]
    assert management[3] == "readable", out.getvalue()
    assert "s3:" not in out.getvalue()


def test_a_role_without_the_export_grants_falls_back_and_check_config_names_them(
        org: Org, caplog: pytest.LogCaptureFixture) -> None:
    org.sim.withhold_actions(MANAGEMENT, ["s3:GetObject", "s3:ListBucket"])
    try:
        with caplog.at_level(logging.WARNING, logger="collectors.cost"):
            assert org.cli("collect", "--once", "--only", "cost") == 0
        assert "AccessDenied" in caplog.text and "reading Cost Explorer" in caplog.text
        last = _runs(org)[-1]
        assert last["status"] == "ok", last["error"]
        assert json.loads(str(last["api_calls_by_operation"]))["ce:GetCostAndUsage"] > 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(["--config", str(org.config_path), "check-config"])
        assert "s3:GetObject (cost)" in out.getvalue()
        assert "s3:ListBucket (cost)" in out.getvalue()
    finally:
        org.sim.repair_account(MANAGEMENT)
