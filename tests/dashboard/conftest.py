"""Fixtures for the dashboard tests (the sample organization: testkit/dashboard_sample.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st

from dashboard.data import open_store
from orgscope.datasets import all_datasets
from orgscope.store import Store
from testkit.dashboard_sample import fill_event_flow, fill_org_store
from testkit.traces_sample import fill_traces


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Every dashboard test starts and ends with Streamlit's data cache empty: cached queries
    are keyed by store path, and a test's tmp_path can be reused."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "data"), all_datasets())


@pytest.fixture
def org_store(empty_store: Store, now: datetime) -> Store:
    fill_org_store(empty_store, now)
    return empty_store


@pytest.fixture
def traced(org_store: Store, now: datetime) -> tuple[Store, pd.DataFrame]:
    """The organization store with the simulator's order flows as spans and stitched traces
    (and their summaries)."""
    return org_store, fill_traces(org_store, now)


@pytest.fixture(scope="session")
def flow_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def flow_store(tmp_path_factory: pytest.TempPathFactory, flow_now: datetime) -> Store:
    """Two days of the sample organization's event flow, shared by read-only tests."""
    store = open_store(str(tmp_path_factory.mktemp("flow") / "data"))
    fill_org_store(store, flow_now)
    fill_event_flow(store, flow_now, days=2)
    return store
