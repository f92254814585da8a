"""Cost Explorer for the simulated organization: the cost model's answers, bound in moto.

moto's GetCostAndUsage answers from canned results, each bound to one exact request body (the
JSON botocore sends, key order included). This module builds the bodies of every request the
cost collector can make today (:mod:`collectors.cost` builds its parameters with the same pure
functions: the simulator may depend on product code, never the reverse), computes each answer
from a :class:`~sim.costs.CostModel`, splits large answers into pages chained by
``NextPageToken`` as Cost Explorer does, and binds them in the payer account's CE backend.

The windows the collector can read today start at the history start (its first run), or at
the first day of the current or previous month (later runs: its watermark is the first day
that can still change). All three are bound, each through today.

Binding writes moto's per-body result map directly (moto runs in this process) rather than
queueing through ``POST /moto-api/static/ce/cost-and-usage-results``: the queue hands results
out in the order requests arrive, which would tie the simulator to the collector's call order,
and a body once bound could never be answered differently (restatements, new spikes).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any

import botocore.session
import numpy as np
import pandas as pd
from botocore.model import OperationModel
from botocore.serialize import create_serializer

from collectors.cost import (
    CostCollectorConfig,
    detail_request,
    history_start,
    open_from,
    page_request,
    pairs_request,
)
from orgscope.cost.review import add_months
from sim.costs import CostModel, list_price

log = logging.getLogger(__name__)

#: Groups per page before Cost Explorer's answer continues on the next page (the real limit is
#: not documented; it pages large answers the same way).
PAGE_GROUPS = 2000

Page = tuple[dict[str, Any], dict[str, Any]]  # (request parameters, response)


@cache
def _operation() -> OperationModel:
    model = botocore.session.get_session().get_service_model("ce")
    return model.operation_model("GetCostAndUsage")


def request_body(params: dict[str, Any]) -> str:
    """The exact body botocore sends for GetCostAndUsage(**params)."""
    serializer = create_serializer("json", include_validation=False)
    body = serializer.serialize_to_request(params, _operation())["body"]
    return body.decode() if isinstance(body, bytes) else str(body)


def _token(request: dict[str, Any], page: int) -> str:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    return f"AQ{digest[:40]}{page:04d}"


def paginate(request: dict[str, Any], periods: list[dict[str, Any]],
             page_groups: int = PAGE_GROUPS) -> list[Page]:
    """One query's answer as pages of at most ``page_groups`` groups (whole periods; a period
    with more groups gets a page of its own)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    count = 0
    for period in periods:
        size = len(period["Groups"])
        if chunks[-1] and count + size > page_groups:
            chunks.append([])
            count = 0
        chunks[-1].append(period)
        count += size
    tokens = [None] + [_token(request, i) for i in range(1, len(chunks))]
    pages: list[Page] = []
    for i, chunk in enumerate(chunks):
        response: dict[str, Any] = {"GroupDefinitions": request["GroupBy"],
                                    "ResultsByTime": chunk, "DimensionValueAttributes": []}
        if i + 1 < len(chunks):
            response["NextPageToken"] = tokens[i + 1]
        pages.append((page_request(request, tokens[i]), response))
    return pages


def usd_text(micros: int) -> str:
    """Millionths of a dollar as Cost Explorer's decimal text: 1234567 -> '1.234567'."""
    sign = "-" if micros < 0 else ""
    whole, part = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{part:06d}"


def _texts(micros: pd.Series) -> list[str]:
    """:func:`usd_text` of every value, vectorised."""
    values = micros.to_numpy(dtype="int64")
    whole, part = np.divmod(np.abs(values), 1_000_000)
    sign = pd.Series(np.where(values < 0, "-", ""), dtype=str)
    text: list[str] = (sign + pd.Series(whole).astype(str) + "."
                       + pd.Series(part).astype(str).str.zfill(6)).tolist()
    return text


def quantity_text(quantity: float) -> str:
    """A usage quantity as Cost Explorer's decimal text (positional, no exponent)."""
    return np.format_float_positional(quantity, trim="-")


def _group(keys: list[str], amount: str,
           usage: tuple[str, str] | None = None) -> dict[str, Any]:
    """One group: its keys, its cost and (``usage``: quantity text and unit) its usage."""
    metrics: dict[str, Any] = {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}
    if usage is not None:
        metrics["UsageQuantity"] = {"Amount": usage[0], "Unit": usage[1]}
    return {"Keys": keys, "Metrics": metrics}


def _periods(model: CostModel, start: date, end: date,
             groups: dict[date, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    periods = []
    day = start
    while day < end:
        periods.append({"TimePeriod": {"Start": day.isoformat(),
                                       "End": (day + timedelta(days=1)).isoformat()},
                        "Total": {}, "Groups": groups.get(day, []),
                        "Estimated": model.estimated(day)})
        day += timedelta(days=1)
    return periods


def window_pages(model: CostModel, settings: CostCollectorConfig, start: date,
                 page_groups: int = PAGE_GROUPS) -> list[Page]:
    """Every page of every query the collector makes for the window [start, today]."""
    end = model.today + timedelta(days=1)
    frame = model.frame
    window = frame[(frame["day"] >= start) & (frame["day"] < end)]
    tag_key = settings.tag_key
    pair_groups: dict[date, list[dict[str, Any]]] = defaultdict(list)
    pairs = window.groupby(["day", "account_id", "team_tag"], sort=True)["micros"].sum()
    for (day, account, value), amount in zip(pairs.index, _texts(pairs), strict=True):
        pair_groups[day].append(_group([account, f"{tag_key}${value}"], amount))
    pages = paginate(pairs_request(start, end, tag_key),
                     _periods(model, start, end, pair_groups), page_groups)
    detail = window.groupby(["account_id", "team_tag", "day", "service", "usage_type"],
                            sort=True)[["micros", "quantity"]].sum()
    by_pair: dict[tuple[str, str], dict[date, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for (account, value, day, service, usage_type), amount, quantity in zip(
            detail.index, _texts(detail["micros"]), detail["quantity"], strict=True):
        usage = (quantity_text(quantity), list_price(service, usage_type)[1])
        by_pair[(account, value)][day].append(_group([service, usage_type], amount, usage))
    for (account, value), groups in sorted(by_pair.items()):
        request = detail_request(start, end, tag_key, account, value)
        pages += paginate(request, _periods(model, start, end, groups), page_groups)
    return pages


def window_starts(today: date, settings: CostCollectorConfig) -> list[date]:
    """Where the collector's read window can start today (see the module docstring)."""
    floor = history_start(today, settings.history_months)
    candidates = {floor, open_from(today, settings.bill_final_day), add_months(today, 0),
                  add_months(today, -1)}
    return sorted(day for day in candidates if day >= floor)


@dataclass
class CostFeed:
    """Binds a cost model's answers in the CE backend of ``payer_account``."""

    payer_account: str
    settings: CostCollectorConfig
    page_groups: int = PAGE_GROUPS
    #: Pages bound per window start, as of the last :meth:`bind` (requests a run will make).
    pages: dict[date, int] = field(default_factory=dict)

    def bind(self, model: CostModel) -> int:
        """Bind every page of every window the collector may read today; returns the pages."""
        from moto.ce.models import ce_backends  # moto is only needed once a server runs

        results = ce_backends[self.payer_account]["aws"].cost_usage_results
        self.pages = {}
        total = 0
        for start in window_starts(model.today, self.settings):
            pages = window_pages(model, self.settings, start, self.page_groups)
            for params, response in pages:
                results[request_body(params)] = response
            self.pages[start] = len(pages)
            total += len(pages)
        log.info("cost explorer: bound %d pages for %s (windows from %s)", total, model.today,
                 ", ".join(str(s) for s in self.pages))
        return total
