"""A Config written back as config.toml loads to the same Config (the demo's dashboard reads
the config the demo collects with through such a file)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orgscope import wiring
from orgscope.config import Config
from orgscope.config_toml import write_config
from orgscope.demo import demo_config, demo_config_path


def _same(a: Config, b: Config) -> bool:
    return a.model_dump(exclude={"source"}) == b.model_dump(exclude={"source"})


def test_the_reference_config_survives_the_round_trip(config_file: Path,
                                                      tmp_path: Path) -> None:
    config = wiring.load(config_file)
    again = write_config(config, tmp_path / "out" / "config.toml")
    assert _same(config, again)
    assert again.source == str(tmp_path / "out" / "config.toml")


def test_the_demo_config_file_holds_what_the_demo_collects_with(config_file: Path) -> None:
    config = demo_config(wiring.load(config_file), "http://127.0.0.1:5999", history_hours=6)
    written = write_config(config, demo_config_path(config))
    assert Path(written.source).parent == Path(wiring.store_base(config))
    assert written.aws.endpoint_url == "http://127.0.0.1:5999"
    assert written.collector("metrics").interval == timedelta(minutes=1)
    assert written.heal.enabled and not written.heal.dry_run
    assert _same(config, written)


def test_the_demo_reads_the_simulators_data_export(config_file: Path) -> None:
    plain = wiring.load(config_file)
    assert plain.collector_value("cost", "source", str) == "cost_explorer"  # the default
    uri = "s3://orgscope-sim-data-exports-101010101010/data-exports/orgscope-focus"
    config = demo_config(plain, "http://127.0.0.1:5999", history_hours=6, export_uri=uri)
    written = write_config(config, demo_config_path(config))
    assert written.collector_value("cost", "source", str) == "data_export"
    assert written.collector_value("cost", "export_uri", str) == uri
    assert _same(config, written)
