"""Stitching: spans of many accounts joined into whole traces (pure; docs/traces.md).

Input: rows of the ``spans`` dataset (any accounts, regions, sources). Output: the same rows,
deduplicated, with ``trace_id`` rewritten to the stitched trace, ``parent_id`` and
``linked_from`` set on a re-linked consumer root, and three more columns: ``original_trace_id``
(the trace id as collected; it differs from ``trace_id`` exactly for the spans of a re-linked
trace), ``depth`` (0 for a root, parent's depth + 1 below) and ``break`` (null for sound spans).
docs/traces.md, "Stitching", explains the re-linking and each break. Invariants:

* Rows come out grouped by stitched trace (traces in order of their first root's start) and,
  within a trace, in depth-first parent order: every span after its parent, siblings by start.
  Order follows the parent links, never the clock.
* Duplicates (the same trace id and span id more than once *from one account*) keep one row:
  the one with an end time, the latest end winning.
* A span id claimed by two accounts keeps every claimant (one account cannot replace another's
  span): each is marked ``span-id-conflict``, and a child takes the claimant of its own account
  as its parent or, if there is none, starts a piece as a root marked ``ambiguous-parent``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pandas as pd

from orgscope.datasets import SPANS
from orgscope.jsontext import json_object
from orgscope.traces.ids import parse_traceparent

log = logging.getLogger(__name__)

#: Annotation a span triggered by an EventBridge rule carries (the rule's name): a root span
#: with it is an event consumer, so a missing traceparent there is a break, not an origin.
CONSUMER_ANNOTATION = "event_rule"
TRACEPARENT_ANNOTATION = "traceparent"

STITCHED_COLUMNS: list[str] = [*SPANS.columns, "original_trace_id", "depth", "break"]

Row = dict[str, Any]
Key = tuple[str, str]

SPAN_ID_CONFLICT = "span-id-conflict"
AMBIGUOUS_PARENT = "ambiguous-parent"


def _annotations(row: Mapping[str, Any]) -> dict[str, Any]:
    return json_object(row.get("annotations"))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or value is pd.NA or \
        (isinstance(value, float) and math.isnan(value))


def _end_rank(row: Mapping[str, Any]) -> tuple[int, Any]:
    end = row.get("end")
    if end is None or _missing(end):
        return (0, pd.Timestamp.min.tz_localize("UTC"))
    return (1, pd.Timestamp(end))


def dedupe(rows: list[Row]) -> list[Row]:
    """One row per (trace_id, span_id, account_id): the one with an end time, the latest end
    winning (first seen on ties). The account is part of the key so that a span another
    account sends under the same ids never replaces the one its own account recorded."""
    best: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        key = (str(row["trace_id"]), str(row["span_id"]), str(row["account_id"]))
        kept = best.get(key)
        if kept is None or _end_rank(row) > _end_rank(kept):
            best[key] = row
    return list(best.values())


def _claimants(rows: list[Row]) -> dict[Key, list[Row]]:
    """{(trace_id, span_id): its rows}; more than one row means accounts disagree."""
    claimed: dict[Key, list[Row]] = defaultdict(list)
    for row in rows:
        claimed[(str(row["trace_id"]), str(row["span_id"]))].append(row)
    return claimed


def _parent_of(row: Row, claimed: Mapping[Key, list[Row]]) -> Row | None:
    """The row ``row``'s parent id names, or None (no parent, not collected, or claimed by
    several accounts none of which is the child's own: then ``break`` says so)."""
    parent = row["parent_id"]
    if _missing(parent):
        return None
    candidates = claimed.get((str(row["trace_id"]), str(parent)), [])
    if len(candidates) > 1:
        own = [c for c in candidates if str(c["account_id"]) == str(row["account_id"])]
        if len(own) == 1:
            return own[0]
        if row["break"] is None:
            row["break"] = AMBIGUOUS_PARENT
        return None
    return candidates[0] if candidates else None


def _resolve(trace: str, joined: Mapping[str, str]) -> str:
    """Follow consumer-trace -> producer-trace links to the end (loops stop where they
    close)."""
    seen = {trace}
    while trace in joined and joined[trace] not in seen:
        trace = joined[trace]
        seen.add(trace)
    return trace


def _link_roots(rows: list[Row], present: set[Key]) -> dict[str, str]:
    """Set ``break``/``linked_from``/``parent_id`` on root spans; return the trace joins
    {consumer trace: producer trace}."""
    joined: dict[str, str] = {}
    for row in rows:
        trace, parent = str(row["trace_id"]), row["parent_id"]
        if not _missing(parent) and (trace, str(parent)) in present:
            continue
        annotations = _annotations(row)
        text = row.get("traceparent")
        if _missing(text) or not text:
            text = annotations.get(TRACEPARENT_ANNOTATION)
        if isinstance(text, str) and text:
            try:
                carried = parse_traceparent(text)
            except ValueError as error:
                log.warning("span %s of trace %s: %s", row["span_id"], trace, error)
                row["break"] = "bad-traceparent"
                continue
            producer = (carried.trace_id, carried.span_id)
            if producer == (trace, str(row["span_id"])):
                # the producer's own span, annotated with the context it injected into the
                # event: an origin, broken only if its own parent is missing
                if not _missing(parent):
                    row["break"] = "missing-parent"
            elif producer in present:
                row["parent_id"] = carried.span_id
                row["linked_from"] = carried.span_id
                if carried.trace_id != trace:
                    joined.setdefault(trace, carried.trace_id)
            else:
                row["break"] = "producer-missing"
        elif CONSUMER_ANNOTATION in annotations:
            row["break"] = "no-traceparent"
        elif not _missing(parent):
            row["break"] = "missing-parent"
    return joined


def _order(rows: list[Row]) -> list[Row]:
    """Depth-first parent order per trace, traces by their first root's start."""
    claimed = _claimants(rows)
    children: dict[int, list[Row]] = defaultdict(list)
    roots: list[Row] = []
    for row in rows:
        parent = _parent_of(row, claimed)
        if parent is None:
            roots.append(row)
        else:
            children[id(parent)].append(row)

    def start(row: Row) -> Any:
        return pd.Timestamp(row["start"])

    ordered: list[Row] = []
    visited: set[int] = set()

    def walk(root: Row) -> None:
        stack: list[tuple[Row, int]] = [(root, 0)]
        while stack:
            row, depth = stack.pop()
            if id(row) in visited:
                continue
            visited.add(id(row))
            row["depth"] = depth
            ordered.append(row)
            below = sorted(children[id(row)], key=start)
            stack.extend((child, depth + 1) for child in reversed(below))

    roots_of: dict[str, list[Row]] = defaultdict(list)
    for root in sorted(roots, key=start):
        roots_of[str(root["trace_id"])].append(root)
    rows_of: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(rows, key=start):
        rows_of[str(row["trace_id"])].append(row)
    # traces in order of their first root (a trace made only of a parent-id loop: last)
    traces = list(roots_of) + [t for t in rows_of if t not in roots_of]
    for trace in traces:
        for root in roots_of.get(trace, []):
            walk(root)
        for row in rows_of[trace]:
            if id(row) in visited:
                continue
            row["break"] = "cycle"  # unreachable from any root: its parent ids loop
            row["parent_id"] = None
            walk(row)
    return ordered


def stitch(spans: pd.DataFrame) -> pd.DataFrame:
    """``spans`` rows -> stitched rows (:data:`STITCHED_COLUMNS`; see the module doc)."""
    if not len(spans):
        return pd.DataFrame(columns=STITCHED_COLUMNS)
    # column lists, zipped: DataFrame.to_dict("records") is ~10x slower on Arrow strings
    names = [str(column) for column in spans.columns]
    rows: list[Row] = [dict(zip(names, values, strict=True))
                       for values in zip(*(spans[c].tolist() for c in spans.columns),
                                         strict=True)]
    rows = dedupe(rows)
    for row in rows:
        row["trace_id"] = str(row["trace_id"])
        row["original_trace_id"] = row["trace_id"]
        row["break"] = None
        row["depth"] = 0
        if _missing(row.get("parent_id")):
            row["parent_id"] = None
        if _missing(row.get("linked_from")):
            row["linked_from"] = None
    claimed = _claimants(rows)
    joined = _link_roots(rows, set(claimed))
    for claimants in claimed.values():
        if len(claimants) > 1:  # said last: it outranks any other break of these rows
            log.warning("span %s of trace %s is claimed by %d accounts; all are kept",
                        claimants[0]["span_id"], claimants[0]["trace_id"], len(claimants))
            for row in claimants:
                row["break"] = SPAN_ID_CONFLICT
    for row in rows:
        row["trace_id"] = _resolve(row["trace_id"], joined)
    ordered = _order(rows)
    frame = pd.DataFrame(ordered, columns=STITCHED_COLUMNS)
    frame["depth"] = frame["depth"].astype("int64")
    return frame.reset_index(drop=True)


