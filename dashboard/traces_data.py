"""Cached reads of the Traces page: ``load_*`` wrappers, cached for 30 s, that take only the
store path and hashable values and call the plain functions of :mod:`dashboard.traces_search`,
:mod:`dashboard.waterfall`, :mod:`dashboard.service_graph`, :mod:`dashboard.trace_latency`
and :mod:`dashboard.deeplinks` (unit-tested on a tmp store without Streamlit)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S, open_store
from dashboard.deeplinks import consumer_link, rule_consumers
from dashboard.filters import TIME_RANGES, Filters
from dashboard.service_graph import ServiceMap, service_map
from dashboard.trace_criteria import TraceSearch, Window
from dashboard.trace_latency import latency
from dashboard.traces_search import Presence, presence, search_choices, search_traces
from dashboard.waterfall import trace_spans, waterfall


def _filters(account_ids: tuple[str, ...], teams: tuple[str, ...],
             regions: tuple[str, ...]) -> Filters:
    return Filters(account_ids=account_ids, teams=teams, regions=regions)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_presence(store_base: str) -> Presence:
    return presence(open_store(store_base))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Searching traces…")
def load_search(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                regions: tuple[str, ...], search: TraceSearch, window: Window) -> pd.DataFrame:
    return search_traces(open_store(store_base), _filters(account_ids, teams, regions), search,
                         window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_search_choices(store_base: str, window: Window) -> dict[str, list[str]]:
    return search_choices(open_store(store_base), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the trace's spans…")
def load_waterfall(store_base: str, *, trace_id: str, member_trace_ids: tuple[str, ...],
                   start: datetime, end: datetime,
                   names: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    spans = trace_spans(open_store(store_base), member_trace_ids, start, end)
    return waterfall(spans, trace_id, dict(names))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Drawing the service map…")
def load_service_map(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                     regions: tuple[str, ...], window: Window) -> ServiceMap:
    return service_map(open_store(store_base), _filters(account_ids, teams, regions), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Computing latency percentiles…")
def load_latency(store_base: str, *, account_ids: tuple[str, ...], teams: tuple[str, ...],
                 regions: tuple[str, ...], window: Window) -> pd.DataFrame:
    return latency(open_store(store_base), _filters(account_ids, teams, regions), window)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_rule_link(store_base: str, key: str, time_range: str, until: datetime
                   ) -> dict[str, str]:
    """Traces page query parameters for an Event-flow rule (``key``: RuleKey.encode())."""
    account_id, region, bus, rule = key.split("|", 3)
    window = Window(until - TIME_RANGES.get(time_range, TIME_RANGES["24h"]), until)
    consumers = rule_consumers(open_store(store_base), account_id=account_id, region=region,
                               bus=bus, rule=rule, window=window)
    return consumer_link(consumers, window)
