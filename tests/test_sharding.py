"""Account shards: the partition is stable, complete and disjoint; the runner, steps and CLI
honour it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from orgscope.accounts import Account
from orgscope.cli import main
from orgscope.collect import Collector
from orgscope.config import ConfigError
from orgscope.datasets import RUNS
from orgscope.plugins import parse_config
from orgscope.runner import Runner, new_cycle_id, runs_frame
from orgscope.sharding import ALL, Shard, parse_shard, partition, runs_org_steps, shard_of
from orgscope.steps import run_steps
from testkit.generated_org import account_ids
from tests.conftest import reference_data

IDS = account_ids(300, seed=7)


def test_shard_of_is_pinned_so_every_process_and_release_agrees() -> None:
    # SHA-256 of the id: the same on every machine and Python version (hash() is salted)
    assert [shard_of("222222222222", n) for n in (1, 2, 3, 4, 8)] == [1, 2, 3, 4, 8]
    assert [shard_of("101010101010", n) for n in (1, 2, 3, 4, 8)] == [1, 1, 1, 1, 5]
    assert shard_of(" 222222222222 ", 4) == shard_of("222222222222", 4)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_partition_is_complete_and_disjoint(count: int) -> None:
    shards = partition(IDS, count)
    assert sorted(shards) == list(range(1, count + 1))
    flat = [a for members in shards.values() for a in members]
    assert sorted(flat) == sorted(IDS)  # every account once: complete and disjoint
    for index, members in shards.items():
        assert Shard(index, count).select([Account(a, a, "t") for a in IDS]) == \
            [Account(a, a, "t") for a in members]
        assert all(Shard(index, count).owns(a) for a in members)


def test_partition_is_roughly_even() -> None:
    sizes = Counter(shard_of(a, 4) for a in IDS)
    assert min(sizes.values()) >= 50 and max(sizes.values()) <= 100  # 75 each on average


@pytest.mark.parametrize("text,expected", [("1/1", Shard(1, 1)), ("2/4", Shard(2, 4)),
                                           (" 3 / 3 ", Shard(3, 3))])
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert parse_shard(expected.label) == expected


@pytest.mark.parametrize("text", ["", "2", "0/1", "3/2", "1/0", "a/b", "-1/2", "1/1001"])
def test_parse_shard_refuses_with_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


def test_org_steps_run_on_shard_one_unless_told() -> None:
    assert runs_org_steps(ALL, "auto")
    assert runs_org_steps(Shard(1, 4), "auto")
    assert not runs_org_steps(Shard(2, 4), "auto")
    assert runs_org_steps(Shard(3, 4), "run")
    assert not runs_org_steps(Shard(1, 4), "skip")


def test_config_keys_are_validated_with_one_line() -> None:
    data = reference_data()
    data["organization"]["shard"] = " 2/4"
    data["organization"]["org_steps"] = "run"
    config = parse_config(data)
    assert (config.organization.shard, config.organization.org_steps) == ("2/4", "run")
    data["organization"]["shard"] = "5/4"
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert error.value.lines == ["config.toml: organization.shard = '5/4': shard 5/4: must be "
                                 "K/N with 1 <= K <= N <= 1000, such as 1/1 or 2/4"]


def _runner(shard: str, steps: str = "auto") -> Runner:
    data = reference_data()
    data["organization"]["shard"] = shard
    data["organization"]["org_steps"] = steps
    return Runner(parse_config(data), MagicMock(), MagicMock())


def _collector(name: str, scope: Any) -> Collector:
    return Collector(name, lambda ctx: {}, (), scope, name, ())


def test_payer_collector_runs_only_in_the_shard_owning_the_management_account() -> None:
    payer = _collector("cost", "payer")
    regional = _collector("inventory", "regional")
    everyone = [Account(a, a, "t") for a in IDS[:40]]
    management = "101010101010"  # the reference config's; shard 1 of 2 owns it
    seen: Counter[str] = Counter()
    for index in (1, 2):
        runner = _runner(f"{index}/2")
        mine = runner.shard.select(everyone)
        targets = runner._targets([payer, regional], mine, everyone)
        seen.update(a.id for c, a, _ in targets if c.name == "inventory")
        payers = [a.id for c, a, _ in targets if c.name == "cost"]
        assert payers == ([management] if shard_of(management, 2) == index else [])
    assert seen == Counter(a.id for a in everyone)


def test_cycle_ids_and_runs_carry_the_shard() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert new_cycle_id(now).startswith("20261126T070000Z-")
    assert new_cycle_id(now, Shard(2, 4)).startswith("20261126T070000Z-s2of4-")
    assert new_cycle_id(now, Shard(2, 4)) != new_cycle_id(now, Shard(2, 4))
    frame = runs_frame("c1", [], Shard(2, 4))
    assert list(frame.columns) == RUNS.columns
    # writers (and samples) from before the column existed still pass the contract
    old = frame.drop(columns=["shard"])
    assert RUNS.to_table(old).column_names == RUNS.columns


def test_steps_run_only_where_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    from orgscope import steps

    def health(runner: Runner) -> str:
        calls.append(runner.shard.label)
        return "ok"

    fake = (steps.Step("health", health),)
    assert run_steps(_runner("2/2"), fake) == {}
    assert run_steps(_runner("1/2", steps="skip"), fake) == {}
    assert calls == []
    assert run_steps(_runner("2/2", steps="run"), fake) == {"health": "ok"}
    assert run_steps(_runner("1/2"), fake) == {"health": "ok"}
    assert calls == ["2/2", "1/2"]


def test_cli_refuses_a_bad_shard_in_one_line(config_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--config", str(config_file), "collect", "--once", "--shard", "3/2"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["orgscope: --shard: shard 3/2: must be K/N with 1 <= K <= N <= 1000, such "
                   "as 1/1 or 2/4"]


def test_serve_compacts_only_where_the_org_wide_steps_run() -> None:
    from orgscope import plugins
    from orgscope.scheduler import build_scheduler

    collectors = list(plugins.COLLECTORS.values())
    jobs = {label: {job.id for job in build_scheduler(_runner(label), collectors,
                                                      plugins.run_steps).get_jobs()}
            for label in ("1/1", "1/3", "2/3")}
    assert "compact" in jobs["1/1"] and "compact" in jobs["1/3"]
    assert "compact" not in jobs["2/3"]
    assert jobs["2/3"] == jobs["1/3"] - {"compact"}  # every collector runs on every shard
