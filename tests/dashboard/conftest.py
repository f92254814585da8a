"""Fixtures for the dashboard tests (the sample organization: testkit/dashboard_sample.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st

from orgscope.datasets import all_datasets
from orgscope.store import Store
from testkit.dashboard_sample import fill_org_store


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
