from __future__ import annotations

import pytest

from sim.patterns import UnsupportedPattern, matches, parse_pattern

ORDER = {
    "source": "quickgrocer.customer-web",
    "detail-type": "Order Placed",
    "account": "111111111111",
    "detail": {"orderStatus": "PENDING", "paymentMethod": "APPLE_PAY", "total": 138.0,
               "tags": ["new", "mobile"]},
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["quickgrocer.customer-web"]}, True),
        ({"source": ["quickgrocer.payment-service"]}, False),
        ({"detail-type": ["Order Placed", "Order Updated"]}, True),
        ({"detail": {"paymentMethod": ["CREDIT_CARD", "APPLE_PAY"]}}, True),
        ({"detail": {"orderStatus": [{"prefix": "PEND"}]}}, True),
        ({"detail": {"orderStatus": [{"suffix": "ING"}]}}, True),
        ({"detail": {"paymentMethod": [{"anything-but": ["GIFT_CARD"]}]}}, True),
        ({"detail": {"paymentMethod": [{"anything-but": "APPLE_PAY"}]}}, False),
        ({"detail": {"paymentMethod": [{"anything-but": {"prefix": "APPLE"}}]}}, False),
        ({"detail": {"total": [{"numeric": [">=", 100]}]}}, True),
        ({"detail": {"total": [{"numeric": [">", 0, "<", 100]}]}}, False),
        ({"detail": {"coupon": [{"exists": False}]}}, True),
        ({"detail": {"coupon": [{"exists": True}]}}, False),
        ({"detail": {"tags": ["mobile"]}}, True),
        ({"detail": {"orderStatus": ["PENDING"]}, "source": ["other"]}, False),
        ({"detail": {"missing": ["x"]}}, False),
    ],
)
def test_matches(pattern: dict[str, object], expected: bool) -> None:
    assert matches(pattern, ORDER) is expected


def test_broken_pattern_matches_nothing() -> None:
    assert not matches({"detail-type": ["OrderPlaced"]}, ORDER)


@pytest.mark.parametrize(
    "pattern",
    [{"source": [{"wildcard": "quick*"}]}, {"$or": []}, {"source": "not-a-list"}],
)
def test_unsupported_features_are_refused(pattern: dict[str, object]) -> None:
    with pytest.raises(UnsupportedPattern):
        matches(pattern, ORDER)


def test_parse_pattern_refuses_non_objects() -> None:
    with pytest.raises(UnsupportedPattern):
        parse_pattern("[1, 2]")
    with pytest.raises(UnsupportedPattern):
        parse_pattern("{not json")
