"""Two `orgscope collect --shard K/2` processes, at the same time, into one store: together
they cover every account of a generated organization exactly once, with nothing lost or
written twice, and only shard 1 runs the org-wide steps."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest

from orgscope import wiring
from orgscope.config_toml import to_toml
from orgscope.plugins import parse_config
from orgscope.sharding import partition, shard_of
from orgscope.store import Store
from testkit.generated_org import GeneratedOrg, GeneratedSpec, generated_config_data
from tests.conftest import ROOT, reference_data
from tests.simulated import BASE_ENV

SPEC = GeneratedSpec(accounts=8, rules_per_account=2, history_minutes=20)


@dataclass
class Sharded:
    org: GeneratedOrg
    store: Store
    outputs: dict[int, subprocess.CompletedProcess[str]]

    def query(self, sql: str) -> pd.DataFrame:
        return self.store.query(sql)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    folder = tmp_path_factory.mktemp("sharded")
    data = generated_config_data(SPEC, reference_data(), "./store", backfill_minutes=15)
    data["aws"]["max_attempts"] = 1
    config_path = folder / "config.toml"
    config_path.write_text(to_toml(data))
    config = parse_config(data, str(config_path))
    ids = [a.id for a in config.accounts]
    assert all(partition(ids, 2).values()), "both shards must own accounts for this test"
    org = GeneratedOrg(config, SPEC)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in BASE_ENV.items():
            patch.setenv(key, value)
        for key in ("ORGSCOPE_EXTERNAL_ID", "ORGSCOPE_STORE", "ORGSCOPE_CONFIG"):
            patch.delenv(key, raising=False)
        endpoint = org.start()
        try:
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
            command = [sys.executable, "-m", "orgscope.cli", "--config", str(config_path),
                       "collect", "--once", "--only", "inventory", "--only", "metrics"]
            processes = {k: subprocess.Popen([*command, "--shard", f"{k}/2"], env=env, cwd=ROOT,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)
                         for k in (1, 2)}
            outputs = {}
            for k, process in processes.items():
                out, err = process.communicate(timeout=180)
                outputs[k] = subprocess.CompletedProcess(process.args, process.returncode,
                                                         out, err)
            yield Sharded(org, wiring.open_store(wiring.load(config_path)), outputs)
        finally:
            org.stop()


def test_both_shards_succeed(sharded: Sharded) -> None:
    for k, done in sharded.outputs.items():
        assert done.returncode == 0, f"shard {k}/2:\n{done.stdout}\n{done.stderr}"


def test_every_account_is_collected_exactly_once_by_its_own_shard(sharded: Sharded) -> None:
    runs = sharded.query("SELECT collector, account_id, shard, status, run_id FROM runs")
    ids = sorted(a.id for a in sharded.org.config.accounts)
    for collector in ("inventory", "metrics"):
        mine = runs[runs["collector"] == collector]
        assert sorted(mine["account_id"]) == ids  # complete, and no account twice
        assert set(mine["status"]) == {"ok"}
        for row in mine.to_dict("records"):
            k = shard_of(str(row["account_id"]), 2)
            assert row["shard"] == f"{k}/2"
            assert f"-s{k}of2-" in str(row["run_id"])


def test_the_store_holds_every_account_once(sharded: Sharded) -> None:
    ids = sorted(a.id for a in sharded.org.config.accounts)
    accounts = sharded.query("SELECT account_id, reachable FROM accounts ORDER BY account_id")
    assert list(accounts["account_id"]) == ids
    assert accounts["reachable"].all()
    rules = sharded.query("SELECT account_id, count(*) AS n FROM rules GROUP BY ALL "
                          "ORDER BY account_id")
    assert list(rules["account_id"]) == ids
    assert set(rules["n"]) == {SPEC.rules_per_account}


def test_the_shards_together_read_every_datapoint_written(sharded: Sharded) -> None:
    metrics = sharded.query(
        "SELECT metric, min(ts) AS start, max(ts) AS last, sum(value) AS total, "
        "count(DISTINCT account_id) AS accounts FROM event_metrics "
        "WHERE metric IN ('MatchedEvents', 'PutEventsEntriesCount') GROUP BY ALL")
    period = timedelta(seconds=sharded.org.config.collector_value("metrics", "period_s", int))
    for row in metrics.to_dict("records"):
        start = pd.Timestamp(row["start"]).to_pydatetime()
        end = pd.Timestamp(row["last"]).to_pydatetime() + period
        truth = sharded.org.totals(start, end)
        assert row["accounts"] == SPEC.accounts
        assert row["total"] == pytest.approx(truth[str(row["metric"])])
        assert row["total"] > 0


def test_files_of_the_two_writers_never_share_a_name(sharded: Sharded) -> None:
    names = [p.name for p in sharded.store.files("runs")]
    assert len(names) == len(set(names)) == 4  # two cycles (inventory, metrics) per shard
    assert sum("-s1of2-" in n for n in names) == sum("-s2of2-" in n for n in names) == 2


def test_only_shard_one_runs_the_org_wide_steps(sharded: Sharded) -> None:
    assert "org-wide steps not run here" in sharded.outputs[2].stdout
    assert "org-wide steps not run here" not in sharded.outputs[1].stdout
