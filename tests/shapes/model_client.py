"""boto3 clients that answer from botocore's own service models, for shape coverage.

:func:`response` builds a Hypothesis strategy for an operation's output shape: every required
member present, every optional member present or absent, strings drawn from text that
includes markup, mention and link characters (``<!channel>``, ``*``, ``|``, ``&``), enums
from their values, numbers within the model's bounds. Page tokens are always absent, so a
collector reads one page. :class:`ModelClient` answers each call with a drawn response and
records what it answered, so a test can compare what a collector stored with what AWS said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape
from hypothesis import strategies as st

#: Members that carry a page token: always absent (one page per call).
PAGE_TOKENS = frozenset({"NextToken", "nextToken", "NextPageToken", "nextForwardToken",
                         "nextBackwardToken"})
#: Text a monitored account could write: ordinary words, and what would become markup,
#: a Slack mention or a link if anything rendered it.
HOSTILE = ["<!channel>", "<https://evil.example|runbook>", "*bold*", "`code`", "&amp;",
           "<script>alert(1)</script>", "=1+2", "@here", "[link](https://evil.example)"]
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE))
MAX_DEPTH = 6


@cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


def operation(service: str, method: str) -> OperationModel:
    """The operation a boto3 method name (``list_rules``) calls."""
    model = service_model(service)
    for name in model.operation_names:
        if botocore.xform_name(name) == method:
            return model.operation_model(name)
    raise AttributeError(f"{service} has no method {method}")


def _string(shape: Shape) -> st.SearchStrategy[Any]:
    enum = getattr(shape, "enum", None)
    if enum:
        return st.sampled_from(list(enum))
    low = int(shape.metadata.get("min", 0))
    high = max(low, min(int(shape.metadata.get("max", 24)), 24))
    return st.one_of(st.text(min_size=low, max_size=high),
                     st.sampled_from([h for h in HOSTILE if low <= len(h) <= max(high, 40)]
                                     or ["x" * low]))


def strategy(shape: Shape | None, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of ``shape`` as botocore hands them to the caller."""
    if shape is None:
        return st.just({})
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if depth > MAX_DEPTH:
            return st.just({})
        required = set(shape.required_members)
        fields: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        for name, member in shape.members.items():
            if name in PAGE_TOKENS:
                continue
            (fields if name in required else optional)[name] = strategy(member, depth + 1)
        return st.fixed_dictionaries(fields, optional=optional)
    if kind == "list":
        assert isinstance(shape, ListShape)
        if depth > MAX_DEPTH:
            return st.just([])
        # the collections near the top (rules, traces, results) are never empty: an empty
        # answer tests little; deeper lists (tags, targets) may be
        return st.lists(strategy(shape.member, depth + 1), min_size=1 if depth <= 2 else 0,
                        max_size=3)
    if kind == "map":
        assert isinstance(shape, MapShape)
        return st.dictionaries(_string(shape.key), strategy(shape.value, depth + 1),
                               max_size=3)
    if kind == "string":
        return _string(shape)
    if kind in ("integer", "long"):
        return st.integers(min_value=int(shape.metadata.get("min", -(2**31))),
                           max_value=min(int(shape.metadata.get("max", 2**31)), 2**31))
    if kind in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                            timezones=st.just(UTC))
    if kind == "blob":
        return st.binary(max_size=8)
    raise NotImplementedError(kind)


@cache
def response(service: str, method: str) -> st.SearchStrategy[Any]:
    """A strategy for ``method``'s response (its output shape)."""
    return strategy(operation(service, method).output_shape)


class _Paginator:
    def __init__(self, client: ModelClient, method: str) -> None:
        self.client, self.method = client, method

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        yield self.client.answer(self.method, params)


#: Makes a drawn response agree with its request where AWS's would (the ids a caller asked
#: for, the documents inside a string member): (params, drawn, draw) -> response.
Hook = Callable[[dict[str, Any], Any, Callable[[st.SearchStrategy[Any]], Any]], Any]


class ModelClient:
    """A boto3 client stand-in: every call answered with a drawn response of its shape."""

    def __init__(self, service: str, draw: Callable[[st.SearchStrategy[Any]], Any],
                 hooks: dict[str, Hook] | None = None) -> None:
        self.service = service
        self.draw = draw
        self.hooks = hooks or {}
        self.answers: list[tuple[str, dict[str, Any], Any]] = []

    def answer(self, method: str, params: dict[str, Any]) -> Any:
        drawn = self.draw(response(self.service, method))
        hook = self.hooks.get(method)
        if hook is not None:
            drawn = hook(params, drawn, self.draw)
        self.answers.append((method, params, drawn))
        return drawn

    def get_paginator(self, method: str) -> _Paginator:
        operation(self.service, method)  # AttributeError for a method the service lacks
        return _Paginator(self, method)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        operation(self.service, method)

        def call(**params: Any) -> Any:
            return self.answer(method, params)

        call.__name__ = method
        return call

    def said(self, method: str) -> list[Any]:
        """Every response this client gave to ``method``."""
        return [drawn for name, _params, drawn in self.answers if name == method]
