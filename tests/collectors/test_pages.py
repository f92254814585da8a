"""The shared NextToken loop: every page once, and no endless loop on a repeated token."""

from __future__ import annotations

from typing import Any

import pytest

from orgscope.collect import PaginationError, pages


def pager(tokens: list[str | None]) -> tuple[list[dict[str, Any]], Any]:
    seen: list[dict[str, Any]] = []

    def list_things(**params: Any) -> dict[str, Any]:
        seen.append(params)
        token = tokens[len(seen) - 1]
        return {"Things": [len(seen)], **({"NextToken": token} if token else {})}

    return seen, list_things


def test_follows_tokens_until_the_last_page() -> None:
    seen, call = pager(["a", "b", None])
    assert [p["Things"] for p in pages(call, {"Limit": 5})] == [[1], [2], [3]]
    assert seen == [{"Limit": 5}, {"Limit": 5, "NextToken": "a"},
                    {"Limit": 5, "NextToken": "b"}]


def test_a_repeated_token_stops_with_a_clear_error() -> None:
    _seen, call = pager(["a", "a", "a"])
    with pytest.raises(PaginationError, match="list_things repeated NextToken 'a'"):
        list(pages(call, {}))


def test_too_many_pages_stop() -> None:
    _seen, call = pager([f"t{i}" for i in range(10)])
    with pytest.raises(PaginationError, match="more than 3 pages"):
        list(pages(call, {}, max_pages=3))
