"""Shared fixtures: the reference config with a store in a temporary folder."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orgscope.config import Config
from orgscope.plugins import parse_config

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_CONFIG = ROOT / "config.toml"


def reference_data() -> dict[str, Any]:
    """config.toml as a dict, to be changed by a test and validated again."""
    return tomllib.loads(REFERENCE_CONFIG.read_text())


@pytest.fixture
def config_data() -> dict[str, Any]:
    return reference_data()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    data = reference_data()
    data["store"] = {"path": str(tmp_path / "store")}
    return parse_config(data, str(tmp_path / "config.toml"))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The reference config.toml copied to tmp_path with the store beside it."""
    text = REFERENCE_CONFIG.read_text().replace('path = "./data"', 'path = "./store"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True, scope="session")
def _streamlit_on_loopback() -> Iterator[None]:
    """Streamlit's AppTest runs the dashboard where a bare `streamlit run` binds it, on
    127.0.0.1 (dashboard/.streamlit/config.toml, which AppTest does not read). Left unset,
    the address means every interface, and the dashboard would show only its sign-in page
    (dashboard/access.py). A test of an exposed dashboard says so itself."""
    from streamlit import config as streamlit_config

    before = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", "127.0.0.1")
    yield
    streamlit_config.set_option("server.address", before)
