"""orgscope dashboard entrypoint: ``streamlit run dashboard/streamlit_app.py``.

On every run it loads config.toml ($ORGSCOPE_CONFIG, else ./config.toml) and decides who may
read (:mod:`dashboard.access`): on an exposed dashboard a reader who is not signed in and
allowed gets the sign-in, refusal or how-to-configure page (:mod:`dashboard.sign_in`) for
every page URL, and nothing is read from the store. Otherwise it draws the shared sidebar
filters, hands pages an :class:`~dashboard.context.AppContext` through session state and runs
the selected page. A bad config stops here with the config's own error lines.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import data
from dashboard.access import current_access, is_loopback
from dashboard.context import CONTEXT_KEY, AppContext
from dashboard.filters import (
    ACCOUNTS_KEY,
    DEFAULT_TIME_RANGE,
    REGIONS_KEY,
    TEAMS_KEY,
    TIME_RANGE_KEY,
    TIME_RANGES,
    read_filters,
)
from dashboard.sign_in import gate, signed_in_box
from orgscope import wiring
from orgscope.config import Config, ConfigError
from orgscope.durations import duration_text
from orgscope.ownership import known_teams, team_tag_key
from orgscope.store import StoreError

log = logging.getLogger(__name__)

REFRESH_KEY = "orgscope.sidebar.refresh"


def _load_config() -> Config:
    """The validated config, or an error box and a stop: with ConfigError's lines on loopback;
    on any other address only in the log (the lines quote the file's values, and without a
    config nobody can be asked to sign in)."""
    path = wiring.config_path()
    try:
        return wiring.load(path)
    except ConfigError as error:
        if not is_loopback(st.get_option("server.address")):
            log.error("the config file %s has problems:\n%s", path, "\n".join(error.lines))
            st.error("**orgscope cannot start: its config file has problems.** They are in "
                     "the dashboard's log, and `orgscope check-config` prints them.")
            st.stop()
            raise
        st.error(
            f"**orgscope cannot start: the config file `{path}` has problems.**\n\n"
            + "\n".join(f"- {line}" for line in error.lines)
            + "\n\nFix the file (or point ORGSCOPE_CONFIG at another one) and reload."
        )
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers the function ends here


def _account_names(config: Config, store_base: str) -> dict[str, str]:
    """Account id -> name, from the store (discovered accounts) and config.toml (wins)."""
    names: dict[str, str] = {}
    try:
        known = data.load_account_choices(store_base)
        names.update(zip(known["account_id"], known["name"], strict=True))
    except StoreError as error:
        log.warning("cannot list accounts from the store %s: %s", store_base, error)
    names.update({account.id: account.name for account in config.accounts})
    return names


def _teams(config: Config, store_base: str) -> list[str]:
    teams = {account.team for account in config.accounts}
    try:
        teams.update(data.load_account_choices(store_base)["team"])
    except StoreError as error:
        log.warning("cannot list teams from the store %s: %s", store_base, error)
    return sorted(str(team) for team in teams)


def _regions(config: Config, store_base: str) -> list[str]:
    regions = set(config.aws.regions)
    try:
        regions.update(data.load_region_choices(store_base))
    except StoreError as error:
        log.warning("cannot list regions from the store %s: %s", store_base, error)
    return sorted(regions)


#: Link parameters (a Slack message's "Open ..." button: ?account=..&team=..&region=..) that
#: set the sidebar filter of the same name on a session's first run.
LINK_FILTERS: dict[str, str] = {"account": ACCOUNTS_KEY, "team": TEAMS_KEY,
                                "region": REGIONS_KEY}
LINKED_KEY = "orgscope.sidebar.linked"


def seed_filters(state: Any, params: Mapping[str, list[str]],
                 offered: Mapping[str, Iterable[str]]) -> None:
    """Once per session, set each sidebar filter named in the link's ``params`` to the linked
    values the sidebar offers (``offered``: per parameter); a filter already chosen wins."""
    if state.get(LINKED_KEY):
        return
    state[LINKED_KEY] = True
    for name, key in LINK_FILTERS.items():
        values = [v for v in params.get(name, []) if v in set(offered.get(name, []))]
        if values and not state.get(key):
            state[key] = values


def _sidebar(config: Config, store_base: str) -> dict[str, str]:
    """Draw the shared filters and the store box; return account id -> name."""
    names = _account_names(config, store_base)
    sidebar = st.sidebar
    seed_filters(st.session_state,
                 {name: st.query_params.get_all(name) for name in LINK_FILTERS},
                 {"account": names, "team": _teams(config, store_base),
                  "region": _regions(config, store_base)})
    sidebar.selectbox(
        "Time range",
        options=list(TIME_RANGES),
        index=list(TIME_RANGES).index(DEFAULT_TIME_RANGE),
        key=TIME_RANGE_KEY,
        format_func=lambda label: f"Last {label}",
        help="History window: reachability checks, collection runs, the event-flow "
        "charts and the traces searched. Inventory, reachability and rule verdicts always "
        "show the latest snapshot.",
    )
    sidebar.multiselect(
        "Accounts",
        options=sorted(names, key=lambda account_id: (names[account_id], account_id)),
        format_func=lambda account_id: f"{names.get(account_id, '?')} ({account_id})",
        key=ACCOUNTS_KEY,
        placeholder="All accounts",
    )
    sidebar.multiselect(
        "Teams", options=_teams(config, store_base), key=TEAMS_KEY, placeholder="All teams"
    )
    sidebar.multiselect(
        "Regions",
        options=_regions(config, store_base),
        key=REGIONS_KEY,
        placeholder="All regions",
    )
    sidebar.divider()
    if sidebar.button("Refresh", key=REFRESH_KEY, icon=":material/refresh:",
                      help="Re-read the store now (data is cached for 30 s)."):
        st.cache_data.clear()
        log.info("dashboard cache cleared by the Refresh button")
    try:
        last = data.load_last_collection(store_base)
    except StoreError as error:
        sidebar.error(f"Store unreadable: {error}")
        last = None
    if last is None:
        collected = "never"
    else:
        age = duration_text(datetime.now(UTC) - last)
        collected = f"{last:%Y-%m-%d %H:%M:%S} UTC ({age} ago)"
    sidebar.caption(
        f"**Organization** {config.organization.name}  \n"
        f"**Store** `{store_base}`  \n"
        f"**Last collection** {collected}"
    )
    return names


def collect_command(config: Config, store_base: str, command: str = "collect --once") -> str:
    """`orgscope collect --once` (or another ``command``) with the environment that points it
    at this dashboard's data."""
    parts = [f"{wiring.CONFIG_ENV}={shlex.quote(str(Path(config.source).resolve()))}"]
    if os.environ.get(wiring.STORE_ENV):
        parts.append(f"{wiring.STORE_ENV}={shlex.quote(store_base)}")
    return " ".join([*parts, f"orgscope {command}"])


def _pages() -> list[Any]:
    """Every page, in the navigation's order."""
    # No icons: st.Page's Material icon doubles as the favicon and is fetched from
    # fonts.gstatic.com, which an air-gapped monitoring account cannot reach.
    return [
        # the SRE's first screen: is every event getting where it should?
        st.Page("app_pages/event_flow.py", title="Event flow", default=True),
        # one request across every account it crossed
        st.Page("app_pages/traces.py", title="Traces"),
        st.Page("app_pages/organization.py", title="Organization"),
        # which rules will go silent when a producer changes its event?
        st.Page("app_pages/schemas.py", title="Schemas"),
        # on-call: what fired, what Slack was told, silences, what auto-heal did
        st.Page("app_pages/alerts.py", title="Alerts"),
        # finance's monthly review
        st.Page("app_pages/cost.py", title="Cost"),
        # the monitoring's own bill: is every collector running, what do they cost?
        st.Page("app_pages/collectors.py", title="Collectors"),
    ]


def main() -> None:
    st.set_page_config(page_title="orgscope", layout="wide")
    config = _load_config()
    access = current_access(config.dashboard)
    if not access.can_read:
        # Every page's URL still resolves (so /cost is not "page not found"), but none runs:
        # no sidebar, no store opened, only the sign-in, refusal or how-to-configure page.
        st.navigation(_pages(), position="hidden")
        gate(access, config.dashboard.auth_provider)
        return
    store_base = wiring.store_base(config)
    try:
        data.open_store(store_base)
    except StoreError as error:
        st.error(f"**orgscope cannot open the store.** {error}")
        st.stop()
    names = _sidebar(config, store_base)
    signed_in_box(access)
    st.session_state[CONTEXT_KEY] = AppContext(
        store_base=store_base,
        config_source=config.source,
        organization=config.organization.name,
        inventory_interval_s=config.collector("inventory").interval.total_seconds(),
        access=access,
        collect_command=collect_command(config, store_base),
        filters=read_filters(st.session_state),
        account_names=names,
        alerts_command=collect_command(config, store_base, "alerts --once"),
        team_tag_key=team_tag_key(config),
        known_teams=tuple(sorted(known_teams(config))),
        base_url=config.dashboard.base_url,
    )
    st.navigation(_pages()).run()


if __name__ == "__main__":
    main()
