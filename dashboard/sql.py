"""SQL fragments shared by the dashboard's queries, and the reader of their list cells.

Only column names chosen in code are spliced into SQL; every value is a ``?`` parameter.
An empty filter tuple means "all".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from dashboard.filters import Filters


def in_list(column: str) -> str:
    """`column` is in the ? list, or the list is empty (= no filter). Takes two parameters."""
    return f"(len(?::VARCHAR[]) = 0 OR list_contains(?::VARCHAR[], {column}))"


def list_params(values: Sequence[str]) -> list[Any]:
    """The two parameters of :func:`in_list` for ``values``."""
    items = list(values)
    return [items, items]


def scope_params(filters: Filters) -> list[Any]:
    """Parameters of ``in_list(account_id) AND in_list(team)``: the sidebar's accounts and
    teams."""
    return list_params(filters.account_ids) + list_params(filters.teams)


def text_list(value: Any) -> list[str]:
    """A list cell of a query result (a list, an array, or None/NaN) as a list of text."""
    try:
        items = iter(value)
    except TypeError:  # None, NaN, NA: no list; another scalar: a list of one
        return [] if value is None or bool(pd.isna(value)) else [str(value)]
    return [str(item) for item in items]
