"""Deep links into the Traces page: query parameters <-> a search, window and trace, and
the link from an Event-flow rule to the traces of its consumers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard.trace_criteria import (
    SearchError,
    TraceSearch,
    Window,
    format_annotations,
    parse_annotations,
)
from orgscope.store import Store
from orgscope.targets import arn_account, target_arns

#: Query parameters the page reads (and the Event-flow page writes).
LINK_PARAMS = ("service", "account", "team", "status", "min_ms", "annotation", "since",
               "until", "trace")


@dataclass(frozen=True)
class Link:
    """A Traces page deep link: the search, an optional window and trace."""

    search: TraceSearch = field(default_factory=TraceSearch)
    window: Window | None = None
    trace: str | None = None


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _moment(text: str, name: str) -> datetime:
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        raise SearchError(f"link parameter {name}={text!r}: expected an ISO time such as "
                          "2026-11-26T08:00:00Z") from None
    if pd.isna(moment):
        raise SearchError(f"link parameter {name}={text!r}: expected an ISO time")
    moment = moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)
    return moment.to_pydatetime()


def read_link(params: Mapping[str, Any], names: Mapping[str, str]) -> Link:
    """Query parameters -> a :class:`Link`; ``account`` may be an id or a name (``names``:
    id -> name). Raises :class:`SearchError` with one line naming the bad parameter."""
    by_name = {name: account for account, name in names.items()}
    accounts = []
    for value in _values(params, "account"):
        if value.isdigit() and len(value) == 12:
            accounts.append(value)
        elif value in by_name:
            accounts.append(by_name[value])
        else:
            raise SearchError(f"link parameter account={value!r}: not an account id (12 "
                              "digits) or a known account name")
    minimum = 0.0
    for value in _values(params, "min_ms")[-1:]:
        try:
            minimum = float(value)
        except ValueError:
            raise SearchError(f"link parameter min_ms={value!r}: expected milliseconds, "
                              "for example 500") from None
    annotations = tuple(pair for text in _values(params, "annotation")
                        for pair in parse_annotations(text))
    search = TraceSearch(
        services=tuple(_values(params, "service")), account_ids=tuple(accounts),
        teams=tuple(_values(params, "team")), statuses=tuple(_values(params, "status")),
        min_duration_ms=minimum, annotations=annotations)
    since, until = _values(params, "since")[-1:], _values(params, "until")[-1:]
    window = None
    if since or until:
        if not since:
            raise SearchError("link parameter until= needs since= as well")
        start = _moment(since[0], "since")
        end = _moment(until[0], "until") if until else datetime.now(UTC)
        window = Window(start, end)
    traces = _values(params, "trace")
    return Link(search=search, window=window, trace=traces[-1] if traces else None)


def link_params(link: Link) -> dict[str, str]:
    """A :class:`Link` as query parameters (the inverse of :func:`read_link`)."""
    search = link.search
    params: dict[str, str] = {}
    for name, values in (("service", search.services), ("account", search.account_ids),
                         ("team", search.teams), ("status", search.statuses)):
        if values:
            params[name] = ",".join(values)
    if search.min_duration_ms:
        params["min_ms"] = f"{search.min_duration_ms:g}"
    if search.annotations:
        params["annotation"] = format_annotations(search.annotations)
    if link.window is not None:
        params["since"] = link.window.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params["until"] = link.window.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if link.trace:
        params["trace"] = link.trace
    return params


def rule_consumers(store: Store, *, account_id: str, region: str, bus: str, rule: str,
                   window: Window) -> pd.DataFrame:
    """Who consumes a rule's events: the services whose spans carry the annotation
    ``event_rule = rule`` in ``window`` (their account), else the accounts of the rule's
    target ARNs (service unknown).

    Columns: service (None when only the target is known), account_id.
    """
    traced = store.query(
        """
        SELECT DISTINCT service, account_id FROM spans
        WHERE start >= ? AND start < ?
          AND json_extract_string(annotations, '/event_rule') = ?
          AND name <> ?  -- the rule's own subsegment on the bus carries it too
        ORDER BY service, account_id
        """,
        [window.since, window.until, rule, rule],
    )
    if len(traced):
        return traced
    targets = store.query(
        "SELECT targets FROM rules WHERE account_id = ? AND region = ? AND bus = ? AND rule = ?",
        [account_id, region, bus, rule],
    )
    accounts: list[str] = []
    for text in targets["targets"]:
        for arn in target_arns(text):
            account = arn_account(arn)
            if account is not None and account not in accounts:
                accounts.append(account)
    services: list[str | None] = [None] * len(accounts)
    return pd.DataFrame({"service": services, "account_id": accounts},
                        columns=["service", "account_id"])


def consumer_link(consumers: pd.DataFrame, window: Window) -> dict[str, str]:
    """Query parameters of the Traces page filtered to a rule's consumers and window."""
    services = tuple(dict.fromkeys(s for s in consumers["service"] if isinstance(s, str)))
    accounts = tuple(dict.fromkeys(str(a) for a in consumers["account_id"]))
    return link_params(Link(search=TraceSearch(services=services, account_ids=accounts),
                            window=window))
