"""The Event-flow route map (dashboard.route_map)."""

from __future__ import annotations

import json

import pandas as pd

from dashboard import route_map as routes
from dashboard import verdicts as vd
from dashboard.filters import Filters
from orgscope.store import Store
from testkit.dashboard_sample import (
    CENTRAL,
    FAILING_RULE,
)


def test_route_map_follows_cross_account_bus_targets(flow_store: Store):
    verdicts = vd.rule_verdicts(flow_store, Filters())
    rules, buses = routes.route_inputs(flow_store, Filters())
    names = {"777777777777": "order-processing", CENTRAL: "event-bus"}
    graph = routes.route_map(rules, buses, verdicts, names)
    label = dict(enumerate(graph.nodes["label"]))
    edges = {(label[s], label[t]) for s, t in zip(graph.links["source"], graph.links["target"],
                                                   strict=True)}
    assert ("order-placed-to-orders", "default · order-processing") in edges
    assert ("default · order-processing", "orders-from-central") in edges
    assert ("quickgrocer.customer-web", "central-bus · event-bus") in edges
    assert ("customer-web" if "111111111111" in names else "111111111111",
            "central-bus · event-bus") in edges
    failing = graph.nodes[graph.nodes["label"] == FAILING_RULE].iloc[0]
    assert failing["colour"] == vd.VERDICT_COLOURS["FAILING"]
    narrowed = routes.route_map(rules, buses, verdicts, names, only_not_ok=True)
    kept = set(narrowed.nodes.loc[narrowed.nodes["kind"] == "rule", "label"])
    assert FAILING_RULE in kept and "order-placed-to-orders" not in kept


def test_route_map_breaks_loops():
    rules = pd.DataFrame([{
        "account_id": "1", "region": "r", "bus": "b", "rule": "loop", "state": "ENABLED",
        "event_pattern": None,
        "targets": json.dumps([{"arn": "arn:aws:events:r:1:event-bus/b"}]),
    }])
    buses = pd.DataFrame(columns=["account_id", "region", "bus", "arn", "allowed_principals"])
    graph = routes.route_map(rules, buses, pd.DataFrame(columns=[
        "account_id", "region", "bus", "rule", "verdict", "reasons"]), {})
    assert any(graph.nodes["label"].str.endswith("(loop)"))
    assert len(graph.links) == 2
