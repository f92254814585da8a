"""Durations as text for people (orgscope.durations)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from orgscope.durations import bucket_text, duration_text


def test_duration_text():
    assert duration_text(-3) == "0s"
    assert duration_text(45) == "45s"
    assert duration_text(12 * 60 + 5) == "12m"
    assert duration_text(3 * 3600 + 5 * 60) == "3h 5m"
    assert duration_text(2 * 3600) == "2h"
    assert duration_text(2 * 86400 + 4 * 3600) == "2d 4h"


def test_duration_text_of_timedeltas():
    assert duration_text(timedelta(minutes=15)) == "15m"
    assert duration_text(pd.Timedelta(days=2, hours=3)) == "2d 3h"
    assert duration_text(timedelta(seconds=-5)) == "0s"


def test_bucket_text():
    assert bucket_text(timedelta(minutes=5)) == "5 min"
    assert bucket_text(timedelta(hours=3)) == "3 h"
    assert bucket_text(timedelta(days=13)) == "13 d"
