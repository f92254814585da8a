"""What the entrypoint hands every page: where the store is, what the config says, the filters.

Pages are scripts run by ``st.navigation``, so they cannot take arguments; the entrypoint puts
one frozen :class:`AppContext` in session state under :data:`CONTEXT_KEY` on every run and pages
read it back with :func:`read_context`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from dashboard.access import Access
from dashboard.filters import Filters

CONTEXT_KEY = "orgscope.context"


@dataclass(frozen=True)
class AppContext:
    """Everything a page needs from the entrypoint; plain values, safe to pass to caches."""

    store_base: str
    config_source: str
    organization: str
    inventory_interval_s: float
    #: Who is reading and what they may change (dashboard/access.py); pages run only when
    #: ``access.can_read``.
    access: Access
    #: The shell command that runs one collection cycle against this same config and store.
    collect_command: str = "orgscope collect --once"
    filters: Filters = field(default_factory=Filters)
    #: account id -> display name, from config.toml and the store.
    account_names: Mapping[str, str] = field(default_factory=dict)
    #: `orgscope alerts --once` with the same environment (the Alerts page's empty state).
    alerts_command: str = "orgscope alerts --once"
    #: The tag naming a resource's team ([collectors.cost] tag_key): it wins over the account's.
    team_tag_key: str = "Team"
    #: Every team config.toml names: a resource's tag counts only when it names one of them.
    known_teams: tuple[str, ...] | None = None
    #: [dashboard] base_url: links into it are the only ones a stored Slack message may show
    #: as links.
    base_url: str | None = None


def read_context(state: Mapping[Any, Any]) -> AppContext | None:
    """The context the entrypoint stored, or None when the page was run on its own."""
    value = state.get(CONTEXT_KEY)
    return value if isinstance(value, AppContext) else None


def run_page(render: Callable[[AppContext], None]) -> None:
    """A page script's entry: render it with the entrypoint's context, or say how to open it."""
    ctx = read_context(st.session_state)
    if ctx is None:
        st.error("Open the dashboard through `streamlit run dashboard/streamlit_app.py`.")
        return
    render(ctx)
