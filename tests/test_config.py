"""config.toml validation: every kind of mistake gives its own clear line."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orgscope import plugins
from orgscope.config import ConfigError, format_interval, parse_interval
from orgscope.plugins import load_config, parse_config


def errors_for(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "cfg.toml")
    return caught.value.lines


def test_reference_config_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "config.toml")
    assert len(config.accounts) == 13
    assert config.organization.central_bus_name == "central-bus"
    assert config.collector("inventory").interval == timedelta(minutes=5)


def test_unknown_key_names_the_key_and_what_is_allowed(config_data: dict[str, Any]) -> None:
    config_data["aws"]["regoins"] = ["us-east-1"]
    (line,) = errors_for(config_data)
    assert line.startswith("cfg.toml: aws.regoins: unknown key")
    assert "regions" in line and "read_role_name" in line


def test_unknown_top_level_section(config_data: dict[str, Any]) -> None:
    config_data["alertz"] = {}
    (line,) = errors_for(config_data)
    assert "cfg.toml: alertz: unknown key" in line
    assert "alerts" in line


def test_malformed_account_id(config_data: dict[str, Any]) -> None:
    config_data["accounts"][2]["id"] = "33333"
    (line,) = errors_for(config_data)
    assert line == (
        "cfg.toml: accounts[2].id = '33333': must be a 12-digit AWS account id, quoted, "
        "e.g. '111111111111'"
    )


def test_unquoted_account_id_is_refused(config_data: dict[str, Any]) -> None:
    config_data["accounts"][0]["id"] = 111111111111
    (line,) = errors_for(config_data)
    assert line.startswith("cfg.toml: accounts[0].id = 111111111111:")


def test_bad_interval(config_data: dict[str, Any]) -> None:
    config_data["collectors"]["inventory"]["interval"] = "5 minutes"
    (line,) = errors_for(config_data)
    assert line.startswith("cfg.toml: collectors.inventory.interval = '5 minutes': must be")
    assert "'30s'" in line and "'5m'" in line


def test_interval_out_of_range(config_data: dict[str, Any]) -> None:
    config_data["collectors"]["inventory"]["interval"] = "5s"
    (line,) = errors_for(config_data)
    assert "between '30s' and '1d'" in line


def test_missing_required_value(config_data: dict[str, Any]) -> None:
    del config_data["organization"]["management_account_id"]
    (line,) = errors_for(config_data)
    assert line == "cfg.toml: organization.management_account_id: required value is missing"


def test_bad_region(config_data: dict[str, Any]) -> None:
    config_data["aws"]["regions"] = ["us-east-1", "mars-1"]
    (line,) = errors_for(config_data)
    assert line.startswith("cfg.toml: aws.regions[1] = 'mars-1': must be an AWS region")


def test_secret_instead_of_env_var_name(config_data: dict[str, Any]) -> None:
    config_data["slack"]["default_webhook_env"] = "https://hooks.slack.com/services/T/B/X"
    (line,) = errors_for(config_data)
    assert "slack.default_webhook_env" in line
    assert "NAME of an environment variable" in line


def test_several_mistakes_give_several_lines(config_data: dict[str, Any]) -> None:
    config_data["accounts"][0]["id"] = "x"
    config_data["aws"]["max_workers"] = 0
    lines = errors_for(config_data)
    assert len(lines) == 2


def test_duplicate_account(config_data: dict[str, Any]) -> None:
    config_data["accounts"].append(dict(config_data["accounts"][0]))
    (line,) = errors_for(config_data)
    assert "'111111111111' is listed twice" in line


def test_heal_role_must_differ_from_read_role(config_data: dict[str, Any]) -> None:
    config_data["heal"]["role_name"] = config_data["aws"]["read_role_name"]
    (line,) = errors_for(config_data)
    assert "heal.role_name must differ" in line


def test_unknown_collector_section(tmp_path: Path, config_file: Path) -> None:
    text = config_file.read_text() + '\n[collectors.metrix]\ninterval = "1m"\n'
    config_file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    assert caught.value.lines == [
        f"{config_file}: collectors.metrix: unknown key "
        f"(allowed here: {', '.join(plugins.COLLECTORS)})"
    ]


def test_every_registered_collector_has_a_config_section_of_its_own_model(
        config_data: dict[str, Any]) -> None:
    config = parse_config(config_data)
    for name, collector in plugins.COLLECTORS.items():
        assert type(config.collector(name)) is collector.settings


def test_metrics_period_must_be_whole_minutes(config_data: dict[str, Any]) -> None:
    config_data["collectors"]["metrics"] = {"period_s": 90}
    (line,) = errors_for(config_data)
    assert line == ("cfg.toml: collectors.metrics.period_s = 90: must be a multiple of 60 "
                    "seconds between 60 and 3600")


def test_dlq_queues_must_be_arns(config_data: dict[str, Any]) -> None:
    config_data["collectors"]["dlq"] = {"queues": ["orders-dlq"]}
    (line,) = errors_for(config_data)
    assert "must be an SQS queue ARN" in line and "'orders-dlq'" in line


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[aws\nregions = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines[0].startswith(f"{path}: not valid TOML:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert caught.value.lines == [f"{tmp_path / 'nope.toml'}: file not found"]


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                               ("1d", 86400)])
def test_interval_round_trip(text: str, seconds: int) -> None:
    interval = parse_interval(text)
    assert interval.total_seconds() == seconds
    assert format_interval(interval) == text


def test_cli_bad_config_exits_2_without_traceback(config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace('"444444444444"', '"44444"'))
    result = subprocess.run(
        [sys.executable, "-m", "orgscope.cli", "--config", str(config_file),
         "check-config", "--no-aws"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"orgscope: {config_file}: accounts[3].id = '44444': must be a 12-digit AWS account id, "
        "quoted, e.g. '111111111111'"
    )


# --- input that once ended in a traceback (issue #13) ---------------------------------------


def test_a_file_that_is_not_utf8_is_one_line_naming_where(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orgscope.cli import main

    text = config_file.read_bytes()
    config_file.write_bytes(text.replace(b'name = "QuickGrocer"', b'name = "Quick\xe9Grocer"', 1))
    assert main(["--config", str(config_file), "check-config", "--no-aws"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"orgscope: {config_file}: line ")
    assert "byte 0xe9 is not UTF-8 text (config.toml must be saved as UTF-8)" in line


@pytest.mark.parametrize(("section", "key", "allowed"), [
    (("collectors", "inventory"), "interval", "'30s' and '1d'"),
    (("traces",), "window", "'1m' and '455d'"),
    (("alerts", "rules", "rule_disabled"), "for", "'0s' and '1d'"),
])
@pytest.mark.parametrize("huge", ["99999999999999d", "1000000000d", "9" * 5000 + "s"])
def test_a_huge_duration_is_out_of_range_not_an_overflow(
        config_data: dict[str, Any], section: tuple[str, ...], key: str, allowed: str,
        huge: str) -> None:
    node = config_data
    for part in section:
        node = node.setdefault(part, {})
    node[key] = huge
    (line,) = errors_for(config_data)
    assert line.startswith(f"cfg.toml: {'.'.join(section)}.{key} = ")
    assert line.endswith(f": must be between {allowed}")


def test_arrays_nested_too_deeply_are_a_config_error(config_file: Path) -> None:
    config_file.write_text("a = " + "[" * 5000 + "1" + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(config_file)


def test_a_key_with_control_characters_is_named_on_one_line(
        config_data: dict[str, Any]) -> None:
    config_data["aws"]["regions\n\x1b[31m"] = ["us-east-1"]
    (line,) = errors_for(config_data)
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("cfg.toml: aws.regions\\n\\x1b[31m: unknown key")


def _toml_value() -> Any:
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.integers(min_value=-2**70, max_value=2**70), st.floats(), st.text(max_size=20),
        st.booleans(), st.dates(), st.datetimes(), st.times(),
        st.from_regex(r"\A[0-9]{1,25} ?[smhd]\Z"))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=5)


def _key_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else []
    return [path for key, value in children
            for path in [(*prefix, key), *_key_paths(value, (*prefix, key))]]


def test_fuzzed_values_give_config_errors_never_tracebacks() -> None:
    """Any value at any key of the reference config: valid, or ConfigError lines."""
    import copy

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.conftest import reference_data

    reference = reference_data()

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(_key_paths(reference)), _toml_value()),
                    min_size=1, max_size=3))
    def check(changes: list[tuple[tuple[Any, ...], Any]]) -> None:
        data = copy.deepcopy(reference)
        for path, value in changes:
            node: Any = data
            for part in path[:-1]:
                node = node.get(part) if isinstance(node, dict) else node[part] \
                    if isinstance(node, list) and isinstance(part, int) and part < len(node) \
                    else None
            if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)
                                          and path[-1] < len(node)):
                node[path[-1]] = value
        try:
            parse_config(data, "cfg.toml")
        except ConfigError as error:
            assert error.lines and all("\n" not in line for line in error.lines)

    check()


def test_fuzzed_bytes_give_config_errors_never_tracebacks(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    original = (Path(__file__).parent.parent / "config.toml").read_bytes()
    path = tmp_path / "config.toml"

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=64), st.integers(min_value=0, max_value=len(original)))
    def check(inserted: bytes, at: int) -> None:
        path.write_bytes(original[:at] + inserted + original[at:])
        try:
            load_config(path)
        except ConfigError as error:
            assert error.lines

    check()
