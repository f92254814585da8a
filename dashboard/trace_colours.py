"""Colours of the Traces page: one per account (every chart agrees) and one per span status."""

from __future__ import annotations

from collections.abc import Sequence

#: Colours for accounts, assigned in order of account id (all accounts the dashboard knows,
#: so every chart agrees). No pure red or amber: those mean fault and error.
ACCOUNT_PALETTE: tuple[str, ...] = (
    "#8c564b", "#7f7f7f", "#1f77b4", "#ff7f0e", "#bcbd22", "#17becf", "#e377c2",
    "#393b79", "#637939", "#2ca02c", "#9467bd", "#8c6d31", "#00838f", "#7b4173",
)
STATUS_COLOURS: dict[str, str] = {"ok": "#2e9e6b", "error": "#e0a030", "fault": "#d6453d"}


def account_colours(account_ids: Sequence[str]) -> dict[str, str]:
    """A stable colour per account id (by sorted id, so every chart agrees)."""
    return {account: ACCOUNT_PALETTE[index % len(ACCOUNT_PALETTE)]
            for index, account in enumerate(sorted(set(account_ids)))}
