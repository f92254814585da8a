"""The QuickGrocer event flows, as plain data: who publishes what, and who subscribes to it.

This is the *design* of the simulated platform, the way a platform team's infrastructure code
describes it. :mod:`sim.build` deploys it through the AWS APIs; after that the traffic model
reads the routing back from the endpoint every tick, so a change made through the API (or a
scenario fault) wins over what is written here. Only the producers (which services publish
which events, how often, with what detail) stay in this module: they are the "users".

Accounts are named as in config.toml's ``[[accounts]]`` ``name`` keys; flows whose accounts
the config does not list are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One kind of event a stream publishes: its share of the stream and its detail."""

    weight: float
    detail: dict[str, Any]


@dataclass(frozen=True)
class Stream:
    """Events one service publishes to the central bus.

    ``peak_per_min`` is the rate at the busiest minute of the day; the daily shape and noise
    of :mod:`sim.traffic` scale it down.
    """

    account: str
    service: str
    source: str
    detail_type: str
    peak_per_min: float
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Route:
    """A central-bus rule forwarding matching events to a team account's default bus, where a
    team rule with the same pattern delivers them to an SQS queue with a DLQ."""

    name: str
    description: str
    pattern: dict[str, Any]
    consumer: str
    service: str
    owner: str
    retry_attempts: int = 2
    max_event_age_s: int = 7200
    #: Extra tags on both of the route's rules (besides Team, Service, ... from sim/build.py).
    tags: dict[str, str] = field(default_factory=dict)
    #: The state both rules are created in: "DISABLED" for a route not live yet.
    state: str = "ENABLED"


ORDER_SOURCE = "quickgrocer.customer-web"
PAYMENT_SOURCE = "quickgrocer.payment-service"
SUBSCRIPTION_SOURCE = "quickgrocer.subscription-service"
MOBILE_SOURCE = "quickgrocer.mobile-apps"


def _order(status: str, method: str, total: float) -> dict[str, Any]:
    return {"orderStatus": status, "paymentMethod": method, "total": total, "currency": "USD"}


STREAMS: tuple[Stream, ...] = (
    Stream(
        "customer-web", "storefront", ORDER_SOURCE, "Order Placed", 60.0,
        (
            Variant(0.45, _order("PENDING", "CREDIT_CARD", 42.5)),
            Variant(0.15, _order("PENDING", "CREDIT_CARD", 138.0)),
            Variant(0.15, _order("PENDING", "DEBIT_CARD", 36.2)),
            Variant(0.15, _order("PENDING", "APPLE_PAY", 27.9)),
            Variant(0.10, _order("PENDING", "GIFT_CARD", 55.0)),
        ),
    ),
    Stream(
        "customer-web", "storefront", ORDER_SOURCE, "Order Updated", 25.0,
        (
            Variant(0.5, {"orderStatus": "PICKING"}),
            Variant(0.3, {"orderStatus": "OUT_FOR_DELIVERY"}),
            Variant(0.2, {"orderStatus": "DELIVERED"}),
        ),
    ),
    Stream(
        "customer-web", "storefront", ORDER_SOURCE, "Order Cancelled", 4.0,
        (Variant(1.0, {"orderStatus": "CANCELLED", "reason": "customer"}),),
    ),
    Stream(
        "mobile-apps", "subscriptions", MOBILE_SOURCE, "Subscription Upgrade Requested", 3.0,
        (Variant(0.8, {"planId": "plus"}), Variant(0.2, {"planId": "family"})),
    ),
    Stream(
        "payment-service", "payments", PAYMENT_SOURCE, "Payment Processed", 55.0,
        (
            Variant(0.95, {"purpose": "order", "amount": 48.0}),
            Variant(0.05, {"purpose": "subscription", "amount": 9.99}),
        ),
    ),
    Stream(
        "payment-service", "payments", PAYMENT_SOURCE, "Payment Failed", 2.0,
        (
            Variant(0.8, {"purpose": "order", "reason": "card_declined"}),
            Variant(0.2, {"purpose": "subscription", "reason": "insufficient_funds"}),
        ),
    ),
    Stream(
        "mobile-apps", "subscriptions", SUBSCRIPTION_SOURCE, "Subscription Activated", 2.5,
        (Variant(1.0, {"plan": {"id": "plus", "features": ["priority_delivery"]}}),),
    ),
)


@dataclass(frozen=True)
class SchemaChange:
    """A producer's new version of one of its detail-types (its next release): fields added
    to ``detail`` (dotted path -> value) and fields moved (old dotted path -> new one).
    Changes of one stream build on each other in the order a scenario ships them."""

    name: str
    account: str
    detail_type: str
    adds: dict[str, Any] = field(default_factory=dict)
    moves: dict[str, str] = field(default_factory=dict)


def _pop(detail: dict[str, Any], path: str) -> tuple[bool, Any]:
    *parents, leaf = path.split(".")
    node: Any = detail
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return False, None
    return True, node.pop(leaf)


def _put(detail: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = detail
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def apply_change(detail: dict[str, Any], change: SchemaChange) -> dict[str, Any]:
    """``detail`` as the producer's release with ``change`` sends it (a new dict)."""
    out: dict[str, Any] = json.loads(json.dumps(detail))
    for old, new in change.moves.items():
        found, value = _pop(out, old)
        if found:
            _put(out, new, value)
    for path, value in change.adds.items():
        _put(out, path, value)
    return out


#: The payment service's releases of "Payment Processed" (docs/simulator.md, "Schema
#: discovery"): v2 adds the currency (nothing matches on it), v3 moves ``purpose`` under a
#: new ``context`` object, which the two rules matching on ``detail.purpose`` stop matching.
SCHEMA_CHANGES: dict[str, SchemaChange] = {change.name: change for change in (
    SchemaChange("payments-currency", "payment-service", "Payment Processed",
                 adds={"currency": "USD"}),
    SchemaChange("payments-context", "payment-service", "Payment Processed",
                 adds={"context.channel": "api"}, moves={"purpose": "context.purpose"}),
)}
#: Shipped before the simulator starts, at this share of the back-filled history before now:
#: the history's own versions.
HISTORY_CHANGES: tuple[tuple[str, float], ...] = (("payments-currency", 0.5),)


#: A route whose rules carry the auto-heal opt-out tag, and one created DISABLED.
OPTED_OUT_ROUTE = "order-cancelled-to-mobile"
CREATED_DISABLED_ROUTE = "order-delivered-to-storefront"


def _p(source: str, *detail_types: str, **detail: Any) -> dict[str, Any]:
    pattern: dict[str, Any] = {"source": [source], "detail-type": list(detail_types)}
    if detail:
        pattern["detail"] = detail
    return pattern


ROUTES: tuple[Route, ...] = (
    # The article's OrderPlacedRule, verbatim.
    Route("order-placed-to-order-processing", "New card orders to order processing",
          _p(ORDER_SOURCE, "Order Placed", orderStatus=["PENDING"],
             paymentMethod=["CREDIT_CARD", "DEBIT_CARD", "APPLE_PAY"]),
          "order-processing", "order-intake", "orders-oncall@quickgrocer.example"),
    Route("order-placed-to-inventory", "Reserve stock for every new order",
          _p(ORDER_SOURCE, "Order Placed"),
          "inventory-mgmt", "stock-reservation", "inventory-oncall@quickgrocer.example"),
    Route("order-events-to-delivery", "Order lifecycle to delivery orchestration",
          _p(ORDER_SOURCE, "Order Placed", "Order Updated", "Order Cancelled"),
          "delivery-orchestration", "dispatch", "delivery-oncall@quickgrocer.example"),
    Route("order-placed-to-payments", "Charge every order not paid by gift card",
          _p(ORDER_SOURCE, "Order Placed", paymentMethod=[{"anything-but": ["GIFT_CARD"]}]),
          "payment-service", "charging", "payments-oncall@quickgrocer.example"),
    Route("order-cancelled-to-payments", "Refund cancelled orders",
          _p(ORDER_SOURCE, "Order Cancelled"),
          "payment-service", "refunds", "payments-oncall@quickgrocer.example"),
    Route("upgrade-requested-to-payments", "Charge subscription upgrades",
          _p(MOBILE_SOURCE, "Subscription Upgrade Requested"),
          "payment-service", "subscription-billing", "payments-oncall@quickgrocer.example"),
    Route("payment-processed-to-subscriptions", "Activate paid subscriptions",
          _p(PAYMENT_SOURCE, "Payment Processed", purpose=["subscription"]),
          "mobile-apps", "subscriptions", "mobile-oncall@quickgrocer.example"),
    Route("payment-failed-to-subscriptions", "Schedule retries of failed subscription payments",
          _p(PAYMENT_SOURCE, "Payment Failed", purpose=["subscription"]),
          "mobile-apps", "subscriptions", "mobile-oncall@quickgrocer.example"),
    Route("payment-events-to-order-processing", "Payment outcome of orders",
          _p(PAYMENT_SOURCE, "Payment Processed", "Payment Failed", purpose=["order"]),
          "order-processing", "order-intake", "orders-oncall@quickgrocer.example"),
    Route("subscription-activated-to-order-processing", "Refresh the subscription cache",
          _p(SUBSCRIPTION_SOURCE, "Subscription Activated"),
          "order-processing", "subscription-cache", "orders-oncall@quickgrocer.example"),
    Route("subscription-activated-to-inventory", "Reserve priority slots for subscribers",
          {"source": [SUBSCRIPTION_SOURCE], "detail-type": ["Subscription Activated"],
           "detail": {"plan": {"features": ["priority_delivery"]}}},
          "inventory-mgmt", "priority-slots", "inventory-oncall@quickgrocer.example"),
    Route("large-orders-to-merchant", "Orders of 100 USD or more to the merchant dashboard",
          _p(ORDER_SOURCE, "Order Placed", total=[{"numeric": [">=", 100]}]),
          "merchant-dashboard", "large-orders", "merchant-oncall@quickgrocer.example"),
    Route("out-for-delivery-to-driver", "Orders leaving the store to the driver app",
          _p(ORDER_SOURCE, "Order Updated", orderStatus=[{"prefix": "OUT_FOR"}]),
          "driver-app", "assignments", "driver-oncall@quickgrocer.example"),
    # The mobile team opted this route out of orgscope's auto-heal (docs/heal.md): when it is
    # disabled, it stays disabled until a person enables it.
    Route(OPTED_OUT_ROUTE, "Cancelled orders to the app's push notices (opted out of auto-heal)",
          _p(ORDER_SOURCE, "Order Cancelled"),
          "mobile-apps", "push-notices", "mobile-oncall@quickgrocer.example",
          tags={"orgscope:autoheal": "off"}),
    # Being rolled out: created DISABLED on purpose, so auto-heal must never turn it on.
    Route(CREATED_DISABLED_ROUTE, "Delivery receipts to the storefront (not live yet)",
          _p(ORDER_SOURCE, "Order Updated", orderStatus=["DELIVERED"]),
          "customer-web", "receipts", "web-oncall@quickgrocer.example", state="DISABLED"),
)


#: Names of the queues a route delivers to in its consumer account (target and its DLQ).
def queue_name(route: Route) -> str:
    return f"{route.service}-{route.name}"[:70]


def dlq_name(route: Route) -> str:
    return f"{queue_name(route)}-dlq"[:80]
