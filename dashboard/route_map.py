"""The Event-flow route map: producers -> bus -> rule -> target, as a Plotly Sankey's nodes
and links, from the latest rules and buses in scope (sources from
:mod:`orgscope.patterns`, targets from :mod:`orgscope.targets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.filters import Filters
from dashboard.sql import in_list, list_params, scope_params, text_list
from dashboard.verdicts import NO_VERDICT, NO_VERDICT_COLOUR, VERDICT_COLOURS
from orgscope.patterns import source_matchers
from orgscope.store import Store
from orgscope.targets import target_arns
from orgscope.untrusted import plotly_text


def route_inputs(store: Store, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest rules (with targets and patterns) and buses (with their allowed principals)
    of the accounts and regions in scope."""
    scope = f"""
    WITH scope AS (
        SELECT account_id FROM accounts
        WHERE {in_list("account_id")} AND {in_list("team")}
    )"""
    rules = store.query(
        scope + f"""
        SELECT r.account_id, r.region, r.bus, r.rule, r.state, r.event_pattern, r.targets
        FROM rules r JOIN scope USING (account_id) WHERE {in_list("r.region")}
        ORDER BY r.account_id, r.region, r.bus, r.rule""",
        [*scope_params(filters), *list_params(filters.regions)],
    )
    buses = store.query(
        scope + f"""
        SELECT b.account_id, b.region, b.bus, b.arn, b.allowed_principals
        FROM event_buses b JOIN scope USING (account_id) WHERE {in_list("b.region")}
        ORDER BY b.account_id, b.region, b.bus""",
        [*scope_params(filters), *list_params(filters.regions)],
    )
    return rules, buses


@dataclass(frozen=True)
class RouteMap:
    """A producers -> bus -> rule -> target graph for a Plotly Sankey.

    ``nodes``: label, kind (producer, bus, rule, target), colour, hover.
    ``links``: source, target (node indexes), colour (the rule's verdict), hover.
    Labels and hovers are Plotly text: every name in them is escaped
    (:func:`orgscope.untrusted.plotly_text`).
    """

    nodes: pd.DataFrame
    links: pd.DataFrame


def _bus_of_arn(arn: str) -> tuple[str, str, str] | None:
    """(account_id, region, bus) of an event-bus ARN, else None."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "events" and parts[5].startswith("event-bus/"):
        return parts[4], parts[3], parts[5].removeprefix("event-bus/")
    return None


def _short_arn(arn: str, names: dict[str, str]) -> str:
    """'order-placed-queue · inventory-mgmt' for an SQS queue ARN in account inventory-mgmt."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    service, account, resource = parts[2], parts[4], parts[5]
    name = resource.removeprefix("function:").rsplit("/", 1)[-1]
    kind = "" if service == "sqs" else f"{service} "
    return f"{kind}{name} · {names.get(account, account)}"


BUS_COLOUR = "#37474f"
PRODUCER_COLOUR = "#90a4ae"
TARGET_COLOUR = "#b0bec5"
PRODUCER_LINK = "rgba(144,164,174,0.35)"


class _RouteBuilder:
    """Nodes and links of a :class:`RouteMap`, deduplicated, with a cycle check."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.index: dict[tuple[str, ...], int] = {}
        self.nodes: list[dict[str, str]] = []
        self.links: list[dict[str, Any]] = []
        self.adjacency: dict[int, set[int]] = {}

    def account(self, account_id: str) -> str:
        """The account's name (else its id), escaped for Plotly."""
        return plotly_text(self.names.get(account_id, account_id))

    def node(self, key: tuple[str, ...], label: str, kind: str, colour: str, hover: str) -> int:
        if key not in self.index:
            self.index[key] = len(self.nodes)
            self.nodes.append({"label": label, "kind": kind, "colour": colour, "hover": hover})
        return self.index[key]

    def bus(self, account_id: str, region: str, bus: str) -> int:
        return self.node(
            ("bus", account_id, region, bus), f"{plotly_text(bus)} · {self.account(account_id)}",
            "bus", BUS_COLOUR, f"bus <b>{plotly_text(bus)}</b><br>{self.account(account_id)} "
            f"({plotly_text(account_id)}) {plotly_text(region)}",
        )

    def producer(self, name: str, label: str, hover: str) -> int:
        return self.node(("producer", name), label, "producer", PRODUCER_COLOUR, hover)

    def link(self, source: int, target: int, colour: str, hover: str) -> None:
        if target in self.adjacency.get(source, set()):
            return
        self.adjacency.setdefault(source, set()).add(target)
        self.links.append({"source": source, "target": target, "colour": colour, "hover": hover})

    def reaches(self, start: int, goal: int) -> bool:
        seen: set[int] = set()
        stack = [start]
        while stack:
            current = stack.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(self.adjacency.get(current, ()))
        return False

    def target(self, rule_index: int, rule: str, account_id: str, arn: str, colour: str) -> None:
        target_bus = _bus_of_arn(arn)
        if target_bus is not None and not (
            ("bus", *target_bus) in self.index
            and self.reaches(self.bus(*target_bus), rule_index)
        ):
            cross = target_bus[0] != account_id
            hover = f"{plotly_text(rule)} -> bus {plotly_text(target_bus[2])}" + (
                f" in {self.account(target_bus[0])} (cross-account)" if cross else "")
            self.link(rule_index, self.bus(*target_bus), _alpha(colour), hover)
            return
        suffix = " (loop)" if target_bus is not None else ""
        target_index = self.node(("target", arn),
                                 plotly_text(_short_arn(arn, self.names)) + suffix, "target",
                                 TARGET_COLOUR, plotly_text(arn))
        self.link(rule_index, target_index, _alpha(colour),
                  f"{plotly_text(rule)} -> {plotly_text(arn)}")


def route_map(
    rules: pd.DataFrame,
    buses: pd.DataFrame,
    verdicts: pd.DataFrame,
    names: dict[str, str],
    *,
    only_not_ok: bool = False,
) -> RouteMap:
    """Build the route graph from :func:`route_inputs` and :func:`rule_verdicts`.

    Producers are the bus policy's allowed principals (accounts) and the sources named by
    rule patterns. A target that is another bus becomes that bus's node, so cross-account
    forwarding reads as one path (a link that would close a loop points at a separate
    "(loop)" node instead: a Sankey cannot draw cycles). ``only_not_ok`` keeps the rules whose
    verdict is not OK, and what leads to them.
    """
    verdict_of = {
        (str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"])):
            (str(r["verdict"]), list(r["reasons"]))
        for r in verdicts.to_dict("records")
    }
    kept = []
    for r in rules.to_dict("records"):
        key = (str(r["account_id"]), str(r["region"]), str(r["bus"]), str(r["rule"]))
        verdict, reasons = verdict_of.get(key, (NO_VERDICT, []))
        if not (only_not_ok and verdict == "OK"):
            kept.append((key, verdict, reasons, r))
    graph = _RouteBuilder(names)
    principals = {
        (str(b["account_id"]), str(b["region"]), str(b["bus"])): text_list(b["allowed_principals"])
        for b in buses.to_dict("records")
    }
    for bus_key in sorted({(k[0], k[1], k[2]) for k, _, _, _ in kept}):
        bus_index = graph.bus(*bus_key)
        for principal in principals.get(bus_key, []):
            account = principal.rsplit(":", 1)[-1] if principal.startswith("arn:") else principal
            label = graph.account(account) if account.isdigit() else plotly_text(principal)
            source = graph.producer(principal, label,
                                    f"allowed to PutEvents on {plotly_text(bus_key[2])}: "
                                    f"{plotly_text(principal)}")
            graph.link(source, bus_index, PRODUCER_LINK, "bus policy allows PutEvents")
    for (account_id, region, bus, rule), verdict, reasons, r in kept:
        colour = VERDICT_COLOURS.get(verdict, NO_VERDICT_COLOUR)
        bus_index = graph.bus(account_id, region, bus)
        for name in (m.label for m in source_matchers(r["event_pattern"])):
            source = graph.producer(name, plotly_text(name),
                                    f"event source {plotly_text(name)}")
            graph.link(source, bus_index, PRODUCER_LINK, "source named by a rule pattern")
        why = "<br>".join(plotly_text(reason) for reason in reasons[:3])
        shown = plotly_text(rule)
        rule_index = graph.node(
            ("rule", account_id, region, bus, rule), shown, "rule", colour,
            f"rule <b>{shown}</b> — {plotly_text(verdict)}<br>{graph.account(account_id)} "
            f"{plotly_text(region)}<br>{why}")
        graph.link(bus_index, rule_index, _alpha(colour), f"{shown}: {plotly_text(verdict)}")
        for arn in target_arns(r["targets"]):
            graph.target(rule_index, rule, account_id, arn, colour)
    return RouteMap(
        nodes=pd.DataFrame(graph.nodes, columns=["label", "kind", "colour", "hover"]),
        links=pd.DataFrame(graph.links, columns=["source", "target", "colour", "hover"]),
    )


def _alpha(hex_colour: str, alpha: float = 0.55) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
