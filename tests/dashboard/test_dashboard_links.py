"""A Slack message's link (?account=..&team=..&region=..) opens the dashboard filtered to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.filters import ACCOUNTS_KEY, REGIONS_KEY, TEAMS_KEY
from dashboard.streamlit_app import LINKED_KEY, seed_filters
from orgscope.wiring import CONFIG_ENV, STORE_ENV
from testkit.dashboard_sample import write_config

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
OFFERED = {"account": ["777777777777", "999999999999"], "team": ["orders", "payments"],
           "region": ["us-east-1"]}


def test_seeds_offered_values_once_and_never_over_a_choice() -> None:
    state: dict[str, Any] = {}
    seed_filters(state, {"account": ["777777777777", "123456789012"], "team": ["nope"],
                         "region": ["us-east-1"]}, OFFERED)
    assert state[ACCOUNTS_KEY] == ["777777777777"]  # an unknown account is dropped
    assert TEAMS_KEY not in state and state[REGIONS_KEY] == ["us-east-1"]
    state[ACCOUNTS_KEY] = []
    seed_filters(state, {"account": ["999999999999"]}, OFFERED)
    assert state[ACCOUNTS_KEY] == []  # once per session: the user's later choice stands
    chosen: dict[str, Any] = {ACCOUNTS_KEY: ["999999999999"]}
    seed_filters(chosen, {"account": ["777777777777"]}, OFFERED)
    assert chosen[ACCOUNTS_KEY] == ["999999999999"] and chosen[LINKED_KEY]


def test_the_event_flow_link_filters_the_sidebar(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(write_config(tmp_path, tmp_path / "data")))
    monkeypatch.delenv(STORE_ENV, raising=False)
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["account"] = "777777777777"
    app.query_params["rule"] = "orders-in"
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.multiselect(key=ACCOUNTS_KEY).value == ["777777777777"]
    assert app.multiselect(key=TEAMS_KEY).value == []
