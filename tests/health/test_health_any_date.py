"""The health model's baselines on the dates that break calendar arithmetic: a year's first
minutes (the hour-of-week buckets span the year end), 29 February and the day after it, a
month's first and last day. Steady traffic is OK; the same collapse is SILENT against the
right bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from health_frames import NAMES, OTHER, PERIOD, REGION, RULE, replace, steady

from orgscope.config import HealthConfig
from orgscope.health.model import evaluate
from testkit import synthetic as sy

MOMENTS = [datetime(2027, 1, 1, 0, 10, tzinfo=UTC), datetime(2028, 2, 29, 12, 10, tzinfo=UTC),
           datetime(2028, 3, 1, 0, 10, tzinfo=UTC), datetime(2026, 11, 30, 23, 55, tzinfo=UTC),
           datetime(2026, 12, 1, 0, 5, tzinfo=UTC)]


def judge(now: datetime, matched_now: float | None = None) -> dict[str, list[str]]:
    start = now - timedelta(days=30)
    metrics = steady(RULE.key, start, now)
    if matched_now is not None:
        metrics = replace(metrics, RULE.key, "MatchedEvents", now - timedelta(minutes=15), now,
                          matched_now)
    verdicts = evaluate(
        sy.inventory([RULE, OTHER], now - timedelta(minutes=2)),
        metrics, sy.dlq_readings([]), sy.accounts(NAMES, now - timedelta(minutes=2)),
        sy.runs([(a, REGION) for a in NAMES], now - timedelta(minutes=3)), sy.buses([]),
        now, HealthConfig(), PERIOD).set_index("rule")
    return {str(rule): [str(row["verdict"]), *row["reasons"]]
            for rule, row in verdicts.iterrows()}


@pytest.mark.parametrize("now", MOMENTS, ids=lambda m: f"{m:%Y-%m-%dT%H:%M}")
def test_steady_traffic_is_ok_and_a_collapse_is_silent_on_any_date(now: datetime) -> None:
    assert judge(now)[RULE.rule][0] == "OK"
    silent = judge(now, matched_now=0.0)[RULE.rule]
    assert silent[0] == "SILENT"
    # the bucket named is the hour of the week of the window's newest periods (the window
    # follows the newest stored period, so it is one of the last twenty minutes' hours)
    recent = {f"{now - timedelta(minutes=m):%a %H}:00 UTC" for m in range(0, 21, 5)}
    assert any(bucket in reason for reason in silent[1:] for bucket in recent), silent
