from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sim.cli import run_sim
from sim.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_demo_scenario_is_valid_and_sorted() -> None:
    events = load_scenario(ROOT / "sim" / "scenarios" / "demo.toml")
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[0].action == "disable_rule"
    assert events[0].at == timedelta(minutes=5)
    assert {e.action for e in events} >= {"target_errors", "break_pattern", "break_account",
                                          "schema_version"}
    canary, switch = [e for e in events if e.action == "schema_version"]
    assert canary.params == {"change": "payments-context", "share": 0.1}
    assert canary.at < switch.at and switch.params["share"] == 1.0


def test_defaults_are_filled(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[events]]\nat = "+90s"\naction = "break_account"\naccount = "111111111111"\n'
                    '[[events]]\nat = "+1m"\naction = "disable_rule"\naccount = "111111111111"\n'
                    'rule = "r"\n')
    first, second = load_scenario(path)
    assert first.action == "disable_rule" and first.params["bus"] == "default"
    assert second.params["how"] == "missing-role"
    assert second.at == timedelta(seconds=90)


def test_invalid_entries_name_the_entry_and_what_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[events]]\nat = "10m"\naction = "disable_rule"\naccount = "121212121212"\n'
        'rule = "x"\n'
        '[[events]]\nat = "+1m"\naction = "explode"\n'
        '[[events]]\nat = "+1m"\naction = "target_errors"\naccount = "1234"\nrule = "x"\n'
        'rate = 2\nduration = "15m"\ncolour = "red"\n'
        '[[events]]\nat = "+1m"\naction = "throttle"\naccount = "121212121212"\nrule = "x"\n'
        '[[events]]\nat = "+2m"\naction = "schema_version"\nchange = "nope"\nshare = 0\n'
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = "\n".join(caught.value.lines)
    assert "events[0] (disable_rule): at = '10m' must be like '+30s'" in text
    assert "events[1]: action = 'explode' is not allowed (allowed: disable_rule" in text
    assert "events[2] (target_errors): account = '1234' must be a 12-digit account id" in text
    assert "events[2] (target_errors): rate = 2 must be a number in (0, 1]" in text
    assert "events[2] (target_errors): unknown key 'colour'" in text
    assert "events[3] (throttle): required key 'rate' is missing" in text
    assert "events[4] (schema_version): change = 'nope' must be a schema change of " \
        "sim/topology.py: payments-currency, payments-context" in text
    assert "events[4] (schema_version): share = 0 must be the share" in text
    assert all(line.startswith(str(path)) for line in caught.value.lines)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[events]\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot be read"):
        load_scenario(tmp_path / "absent.toml")


def test_run_sim_refuses_a_bad_scenario_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[events]]\nat = "+1m"\naction = "explode"\n')
    assert run_sim(str(ROOT / "config.toml"), 0, str(bad), 60.0) == 2
    assert "action = 'explode' is not allowed" in capsys.readouterr().err
