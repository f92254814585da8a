"""Cached reads of the Event-flow page: ``load_*`` wrappers, cached for 30 s, that take only
the store path and hashable filter values and call the plain functions of
:mod:`dashboard.verdicts`, :mod:`dashboard.rule_metrics`, :mod:`dashboard.dlqs` and
:mod:`dashboard.route_map` (unit-tested on a tmp store without Streamlit)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard.buckets import window
from dashboard.data import CACHE_TTL_S, open_store
from dashboard.dlqs import dlq_latest, dlq_series
from dashboard.filters import Filters
from dashboard.route_map import route_inputs
from dashboard.rule_metrics import metrics_present, rule_funnel, rule_series
from dashboard.verdicts import RuleKey, rule_verdicts
from orgscope.plugins import load_config


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_verdicts(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...], *, tag_key: str = "Team", known: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return rule_verdicts(open_store(store_base), filters, tag_key, known)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_metrics_present(store_base: str) -> bool:
    return metrics_present(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_funnel(store_base: str, key: str, time_range: str) -> pd.DataFrame:
    since, until = window(Filters(time_range=time_range), datetime.now(UTC))
    return rule_funnel(open_store(store_base), RuleKey.decode(key), since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_series(store_base: str, config_source: str, key: str, metric: str,
                     time_range: str) -> pd.DataFrame:
    since, until = window(Filters(time_range=time_range), datetime.now(UTC))
    return rule_series(open_store(store_base), RuleKey.decode(key), metric, since, until,
                       health=load_config(config_source).health)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_dlq_series(
    store_base: str, time_range: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> pd.DataFrame:
    filters = Filters(time_range=time_range, account_ids=account_ids, teams=teams,
                      regions=regions)
    since, until = window(filters, datetime.now(UTC))
    return dlq_series(open_store(store_base), filters, since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_dlq_latest(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> pd.DataFrame:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return dlq_latest(open_store(store_base), filters)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_route_inputs(
    store_base: str, account_ids: tuple[str, ...], teams: tuple[str, ...],
    regions: tuple[str, ...],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    filters = Filters(account_ids=account_ids, teams=teams, regions=regions)
    return route_inputs(open_store(store_base), filters)
